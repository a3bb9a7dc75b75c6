"""The fork server: one long-lived process per ``Sandbox`` that forks one discarded child per job.

Started with a fixed ``PYTHONHASHSEED`` and a scrubbed environment, it imports the modules programs
commonly use, moves itself into an empty network namespace and a private mount namespace (children
inherit both; without root, inside a user namespace of its own) where every mount but its own folder is
read-only (Linux 5.12+), becomes PID 1 of a PID namespace of its own (no job can see or signal a process
outside it; the process the ``Sandbox`` started only waits for it), then serves JSON lines: a job in on
stdin, its result out on stdout. Each job's folder is a tmpfs of its own, sized to the job's disk budget,
so a program cannot fill the host's disk however many files it writes (an emptied one is reused:
mounting costs more than a trivial job).
A single-threaded selector loop supervises all running children: it collects their stdout/stderr up to
a cap, enforces the wall-clock deadline by killing the child's process group, reaps them and empties
or unmounts their folders. On end of input it kills whatever still runs and exits, so it never
outlives its ``Sandbox``.
"""

from __future__ import annotations

# Modules programs commonly import; children get them for free.
import array, bisect, collections, copy, dataclasses, datetime, decimal, enum, fractions, functools  # noqa: E401,F401
import hashlib, heapq, itertools, json, math, numbers, operator, random, re, statistics, string  # noqa: E401,F401
import textwrap, typing, unicodedata, cmath, abc, io, queue, struct, time, calendar, contextlib, ast  # noqa: E401,F401
import collections.abc  # noqa: F401
import base64, pickle  # noqa: E401,F401
import faulthandler, subprocess, tempfile as _tempfile  # noqa: E401,F401  (the guard patches these)

import ctypes
import gc
import importlib
import os
import resource
import selectors
import signal
import sys
import tempfile
import threading
from shutil import rmtree  # the guard sets shutil.rmtree to None in this process
from collections.abc import Callable

from semcoder_jax.execution import child, coverage, determinism, guard, tracer  # noqa: F401
from semcoder_jax.execution.result import SANDBOX_FAILURE

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x2, 0x4, 0x8, 0x1000, 0x4000, 0x40000
MNT_DETACH = 0x2
SYS_MOUNT_SETATTR = 442  # the same on every architecture (Linux 5.12+)
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY, MOUNT_ATTR_NODEV = -100, 0x8000, 0x1, 0x4
# The device files a program may open once the host is read-only. A read-only mount still lets a device
# node be opened for writing (/dev/vda, /dev/kmsg), so every other one is refused by ``nodev``.
SAFE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
# A job's tmpfs holds at most this many files and folders (each costs kernel memory beyond its size).
MAX_INODES = 1 << 16
# Each job runs under a user and group id of its own, taken in turn from its server's block of this range
# (no host account uses such ids; ``job_id_block``); the id below it is the group that may see every
# process in the server's ``/proc``: nobody's.
JOB_IDS_BASE, JOB_IDS_END = 1_500_000_000, 0xFFFF_FFFE  # (uid_t)-1 is no id
READ_CHUNK = 1 << 16
MAX_WAIT_S = 3600.0
# The result channel is capped too (a program can write to it): beyond the largest legitimate result
# (return repr and trace payload, JSON-escaped), the child is killed for ``output_limit``.
RESULT_BASE_BYTES = 64 << 20
# Outside JSON strings the text is ASCII, so each of these is a lone surrogate inside a string.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _raw_fork():
    """libc's ``fork`` without ``os.fork``'s interpreter bookkeeping.

    ``os.fork`` re-initialises thread state and runs the ``register_at_fork`` hooks, which writes to
    some 200 shared pages per child that the kernel must then copy: a third of a trivial job's cost.
    This server is single-threaded and holds the GIL across the call (``PyDLL``), so the child needs
    none of it except a fresh ``random`` seed, which ``child_main`` takes.
    """
    try:
        fork = ctypes.PyDLL(None)["fork"]  # not cached on the library object: see ``ForkServer.start``
    except (OSError, AttributeError):
        return os.fork
    fork.argtypes = ()
    fork.restype = ctypes.c_int

    def raw_fork() -> int:
        pid = fork()
        if pid < 0:
            raise OSError(ctypes.get_errno(), "fork failed")
        return pid

    return raw_fork


_libc = None


def _libc_call(name: str, *args) -> bool:
    """Call libc's ``name``. The function is looked up afresh each time, never cached on ``_libc``: a
    cached one (``_libc.syscall``) stays reachable from a child, and calling a ctypes function raises
    no audit event, so a program could make any system call; a fresh lookup raises ``ctypes.dlsym``."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc[name](*args) == 0
    except (OSError, AttributeError):
        return False


def _enter_user_namespace() -> bool:
    """Become privileged over new namespaces without root: a user namespace mapping our own ids."""
    uid, gid = os.geteuid(), os.getegid()
    if not _libc_call("unshare", CLONE_NEWUSER):
        return False
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        return False
    return True


def isolate(network: bool, disk: bool) -> tuple[bool, bool]:
    """Move this process into an empty network namespace and a private mount namespace.

    Root (CAP_SYS_ADMIN) can do both directly; anyone else through a user namespace where the
    kernel allows unprivileged ones. Returns which of the two took effect; either may fail alone.
    """
    if not (network or disk):
        return False, False
    if os.geteuid() != 0 and not _enter_user_namespace():
        return False, False
    net = network and _libc_call("unshare", CLONE_NEWNET)
    # Mounts made here must not propagate back to the host's namespace.
    mnt = disk and _libc_call("unshare", CLONE_NEWNS) and _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    return net, mnt


def enter_pid_namespace(outer_fds: tuple[int, ...], on_exit=None) -> bool:
    """Continue as PID 1 of a new PID namespace: a program that gets around the audit policy can then see,
    signal or ``pidfd_open`` no process outside it (the fork server runs as the host's user, often root),
    and when PID 1 exits the kernel kills whatever is left in the namespace, a job's escaped descendants
    included. The calling process stays outside (``unshare`` moves only its children): it forks PID 1,
    closes ``outer_fds`` (the request and response pipes, so that end of file still follows PID 1's
    exit), waits, calls ``on_exit`` and exits with PID 1's status; PID 1 is killed when the calling process dies.
    False, in the calling process and with nothing changed, where the kernel refuses a PID namespace."""
    if not _libc_call("unshare", CLONE_NEWPID):
        return False
    alive_r, alive_w = os.pipe()  # end of file on alive_r: the outer process is gone
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        child.die_with_parent(0)  # getppid() is 0 here (the parent is outside), so the pipe tells instead
        os.set_blocking(alive_r, False)
        try:
            if not os.read(alive_r, 1):
                os._exit(1)
        except BlockingIOError:
            pass
        os.close(alive_r)
        return True
    for fd in (alive_r, *outer_fds):
        os.close(fd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if on_exit is not None:
        on_exit()
    os._exit(code if code >= 0 else 128 - code)


def mount_own_proc() -> bool:
    """This PID namespace's ``/proc`` over the host's (call in PID 1's private mount namespace): a program
    lists only the sandbox's processes and ``/proc/<os.getpid()>`` is its own. Read-only, so the entries
    the host's ``/proc`` may have covered (``sysrq-trigger``) stay unwritable; ``hidepid`` (where the kernel
    has it) hides every process a program may not inspect: the server and the other jobs. False where the
    kernel refuses it (in a user namespace, if the host's ``/proc`` has covered entries)."""
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    nobody = f"gid={JOB_IDS_BASE - 1}".encode()  # unmapped in a user namespace, hence the later options
    return any(_libc_call("mount", b"proc", b"/proc", b"proc", flags, options)
               for options in (b"hidepid=invisible," + nobody, b"hidepid=2," + nobody, b"hidepid=2", None))


def mount_job_folder(path: str, size_bytes: int) -> bool:
    """A tmpfs of ``size_bytes`` at ``path``: the job's disk budget, whatever number of files it writes."""
    options = f"size={size_bytes},nr_inodes={MAX_INODES},mode=0700".encode()
    return _libc_call("mount", b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)


def unmount_job_folder(path: str) -> None:
    _libc_call("umount2", path.encode(), MNT_DETACH)


def _set_attributes(path: str, set_: int, clear: int, recursive: bool) -> bool:
    attr = struct.pack("QQQQ", set_, clear, 0, 0)
    return _libc_call("syscall", ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_long(AT_FDCWD), path.encode(),
                      ctypes.c_long(AT_RECURSIVE if recursive else 0), attr, ctypes.c_long(len(attr)))


def _bind_onto_itself(path: str) -> bool:
    return _libc_call("mount", path.encode(), path.encode(), None, MS_BIND, None)


def read_only_host(writable: str) -> bool:
    """Make every mount of this private mount namespace read-only and ``nodev``, except ``writable``
    (bound onto itself) and the ``SAFE_DEVICES`` (bound onto themselves, still read-only: a device is
    written through its node whatever the mount): then no call can create, change or remove a file
    outside the sandbox's folders, whether or not it raises an audit event (``mkfifo``, ``fchmod``) and
    however the program gets around the audit policy. False where the kernel cannot (before 5.12), and
    nothing changes."""
    if not _bind_onto_itself(writable):
        return False
    devices = [d for d in SAFE_DEVICES if os.path.exists(d) and _bind_onto_itself(d)]
    if not _set_attributes("/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, 0, recursive=True):
        for path in (writable, *devices):
            unmount_job_folder(path)
        return False
    if not _set_attributes(writable, 0, MOUNT_ATTR_RDONLY, recursive=False):
        raise OSError(ctypes.get_errno(), f"could not keep {writable} writable")
    for path in devices:  # fails only where the host's /dev was nodev already (in a user namespace)
        _set_attributes(path, 0, MOUNT_ATTR_NODEV, recursive=False)
    return True


def job_id_block(host_pid: int) -> tuple[int, int]:
    """The first id and the number of ids of the block that the fork server with process id ``host_pid``
    (outside its own PID namespace, where no two live servers share one) gives its jobs: fork servers
    running at once (a sandbox's sibling of another hash seed, one per worker process) never hand out
    the same id, so none shares another server's job's process limit or folder group. (Containers with
    PID namespaces of their own, as root of one user namespace, can still meet.)"""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except (OSError, ValueError):
        pid_max = 1 << 22  # the kernel's largest
    size = (JOB_IDS_END - JOB_IDS_BASE) // max(pid_max, host_pid + 1)
    return JOB_IDS_BASE + host_pid * size, size


def probe_job_ids() -> bool:
    """Whether a child of this server can take ids of its own (``child.take_identity``): root of the initial
    user namespace can, with ``CAP_SETUID``/``CAP_SETGID``; in a user namespace of its own, which maps one id
    only, or without root, every job runs as this server's user."""
    pid = os.fork()
    if pid == 0:
        try:
            child.take_identity(JOB_IDS_BASE)
            code = 0
        except BaseException:  # noqa: BLE001 - any failure means no
            code = 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def close_to_jobs(path: str) -> None:
    """Leave the server's folder ``path`` to its jobs only to pass through (they open files as this user,
    without capabilities): it lies on the host's disk, where a program past the audit policy wrote any number
    of files beside its tmpfs and listed the other jobs' folders. Left as it was where this server cannot
    create folders past the mode (no ``CAP_DAC_OVERRIDE``)."""
    os.chmod(path, 0o100)
    probe = os.path.join(path, "probe")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError:
        os.chmod(path, 0o700)


class Running:
    __slots__ = ("job", "pid", "dir", "tmpfs_bytes", "fds", "out", "err", "result", "start", "deadline",
                 "killed_for", "cap", "responded", "result_cap", "ident", "setup_fd", "setup_done")

    def __init__(self, job, pid, sandbox_dir, tmpfs_bytes, fds, start, deadline, cap):
        self.job, self.pid, self.dir, self.start, self.deadline, self.cap = job, pid, sandbox_dir, start, deadline, cap
        self.tmpfs_bytes = tmpfs_bytes  # 0: a plain folder
        self.fds = fds  # fd -> "result" | "out" | "err" | "exit" (a pidfd)
        self.out, self.err, self.result = bytearray(), bytearray(), bytearray()
        self.killed_for: str | None = None
        self.responded = False
        self.ident: int | None = None  # the job's user and group id, where it has its own
        self.setup_fd: int | None = None  # read end of the child's setup channel (``child.SETUP_FD``)
        self.setup_done: bool | None = None  # read from it once, when the job is composed
        trace_bytes = (job.get("trace_options") or {}).get("max_bytes", 0)
        self.result_cap = RESULT_BASE_BYTES + 12 * (int(job.get("max_return_repr", 1_000_000)) + int(trace_bytes))


class ForkServer:
    def __init__(self, req_fd: int, resp_fd: int, network_isolated: bool, disk_isolated: bool, pid_isolated: bool = False,
                 tmp_root: str | None = None):
        self.ids_isolated = False  # each job under ids of its own (``child.take_identity``): see ``probe_job_ids``
        self.jobs_started = 0
        self.ids_first, self.ids_count = job_id_block(os.getpid())  # ``main`` names the host's pid
        self.req_fd, self.resp_fd = req_fd, resp_fd
        self.network_isolated, self.disk_isolated, self.pid_isolated = network_isolated, disk_isolated, pid_isolated
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, Running] = {}
        self.buffer = b""
        self.eof = False
        self.exited: list[int] = []  # pids whose pidfd reported their exit
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # Child exits arrive as readable pidfds (Linux 5.3+); otherwise as SIGCHLD on a wakeup fd,
        # which every child must then undo.
        self.use_pidfd = _pidfd_works()
        if not self.use_pidfd:
            signal.signal(signal.SIGCHLD, lambda *_: None)
            signal.set_wakeup_fd(self.wake_w)
        child.RESET_SIGNALS = not self.use_pidfd
        self.sel.register(req_fd, selectors.EVENT_READ, "req")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.folders_made = 0
        self.free_tmpfs: dict[int, list[str]] = {}  # size -> emptied, still mounted job folders
        self.tmp_root = tmp_root or os.path.realpath(tempfile.mkdtemp(prefix="semcoder-sandbox-"))
        if self.disk_isolated:  # a mount namespace where tmpfs mounts still fail (some container runtimes)
            self.disk_isolated = mount_job_folder(self.tmp_root, 1 << 20)
            unmount_job_folder(self.tmp_root)
        self.host_read_only = False  # made so once the preloaded modules are in (they may write caches)
        self.oom_kills = oom_kill_count()

    def respond(self, obj: dict) -> None:
        text = json.dumps(obj, ensure_ascii=False)
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # lone surrogates (a program's str(exc) or __repr__): written as text, "\\udc80"
            raw = _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text).encode()
        data = memoryview(raw + b"\n")
        while data:
            n = os.write(self.resp_fd, data)
            data = data[n:]

    def start(self, job: dict) -> None:
        ident = self.next_ident()
        sandbox_dir, tmpfs_bytes = self.job_folder(int(job.get("max_disk_bytes") or 0), ident)
        r_res, w_res = os.pipe()
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        r_set, w_set = os.pipe()
        start = time.monotonic()
        pid = self.fork()
        if pid == 0:
            try:
                self.fork = None  # the raw fork (a ctypes function, no audit event) goes with its last reference
                for fd in (r_res, r_out, r_err, r_set, self.req_fd, self.resp_fd, self.wake_r, self.wake_w):
                    os.close(fd)
                child.child_main(job, sandbox_dir, w_res, w_out, w_err, ident, w_set)
            finally:
                os._exit(4)
        for fd in (w_res, w_out, w_err, w_set):
            os.close(fd)
        os.set_blocking(r_set, False)
        fds = {r_res: "result", r_out: "out", r_err: "err"}
        run = Running(job, pid, sandbox_dir, tmpfs_bytes, fds, start, start + float(job["timeout_s"]), int(job["max_output_bytes"]))
        for fd in fds:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, pid)
        if self.use_pidfd:
            pidfd = os.pidfd_open(pid)
            fds[pidfd] = "exit"
            self.sel.register(pidfd, selectors.EVENT_READ, pid)
        run.ident = ident
        run.setup_fd = r_set
        self.running[pid] = run

    def next_ident(self) -> int | None:
        """The next id of this server's block that no running job holds (after a wrap, a job slower than the
        block's worth of jobs after it keeps its own); None without ids of their own."""
        if not self.ids_isolated:
            return None
        held = {run.ident for run in self.running.values()}
        for _ in range(len(held) + 1):
            ident = self.ids_first + self.jobs_started % self.ids_count
            self.jobs_started += 1
            if ident not in held:
                break
        return ident

    def job_folder(self, disk_bytes: int, ident: int | None = None) -> tuple[str, int]:
        """An empty folder private to one job, and the size of its tmpfs (0: a plain folder). With the job's
        own ``ident``, the folder is that group's alone (mode 0070, owned by ``ident``): the job opens files
        as the server's user, like every other job, so only its group tells it apart."""
        tmpfs = self.disk_isolated and disk_bytes > 0
        if tmpfs and self.free_tmpfs.get(disk_bytes):
            path = self.free_tmpfs[disk_bytes].pop()
        else:
            self.folders_made += 1
            path = f"{self.tmp_root}/{self.folders_made}"  # tmp_root is private (0700) to this server
            os.mkdir(path, 0o700)
            if tmpfs and not mount_job_folder(path, disk_bytes):
                errno = ctypes.get_errno()
                os.rmdir(path)
                raise OSError(errno, f"could not mount the job's {disk_bytes}-byte tmpfs")
        if ident is not None:
            os.chown(path, ident, ident)
            os.chmod(path, 0o070)
        return path, disk_bytes if tmpfs else 0

    def release_folder(self, run: Running) -> None:
        """Keep an emptied tmpfs for the next job; unmount and remove anything else."""
        if run.tmpfs_bytes:
            try:
                if not os.listdir(run.dir):  # most programs leave their folder empty
                    os.chmod(run.dir, 0o700)
                    self.free_tmpfs.setdefault(run.tmpfs_bytes, []).append(run.dir)
                    return
            except OSError:
                pass
            unmount_job_folder(run.dir)
        try:
            os.rmdir(run.dir)
        except OSError:
            rmtree(run.dir, ignore_errors=True)

    def kill(self, run: Running, reason: str) -> None:
        if run.killed_for is None:
            run.killed_for = reason
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(run.pid, signal.SIGKILL)

    def read_fd(self, run: Running, fd: int) -> None:
        """Read what is available; unregister on end of file."""
        kind = run.fds.get(fd)
        if kind is None:
            return
        if kind == "exit":
            self.sel.unregister(fd)
            os.close(fd)
            del run.fds[fd]
            self.exited.append(run.pid)
            return
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.sel.unregister(fd)
                os.close(fd)
                del run.fds[fd]
                return
            if kind == "result":
                if len(run.result) + len(chunk) > run.result_cap:
                    self.kill(run, "output_limit")  # and keep draining, discarding
                    continue
                run.result += chunk
                if run.result.endswith(b"\n") and not run.responded:
                    self.respond_early(run)
            else:
                buf = run.out if kind == "out" else run.err
                room = run.cap - len(run.out) - len(run.err)
                buf += chunk[: max(room, 0)]
                if len(chunk) > room:
                    self.kill(run, "output_limit")
                    # Keep draining so the child cannot block on a full pipe before it dies.

    def respond_early(self, run: Running) -> None:
        """The child wrote its whole result (after flushing its output): answer now, reap later. Its pidfd
        is left to say when it exits: a program can write a result line itself and go on running, and
        reaping it now would block this server (every job's deadline) until it ends."""
        for fd in [fd for fd, kind in run.fds.items() if kind in ("out", "err")]:
            self.read_fd(run, fd)
        if run.killed_for is None:
            self.respond(self.compose(run, None))
            run.responded = True

    def reap_exited(self) -> None:
        """Reap the children whose pidfd fired. The pidfd may report the exit a moment before
        ``waitpid(-1, WNOHANG)`` sees the zombie, so wait for each such pid; it is already exiting."""
        exited, self.exited = self.exited, []
        for pid in exited:
            run = self.running.pop(pid, None)
            if run is None:
                continue
            try:
                _, status, usage = _wait4(pid, 0)
            except ChildProcessError:
                status, usage = 0, None
            self.finish(run, status, usage)

    def reap(self) -> None:
        while self.running:
            try:
                pid, status, usage = _wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.running.pop(pid, None)
            if run is not None:
                self.finish(run, status, usage)

    def finish(self, run: Running, wait_status: int, usage: resource.struct_rusage | None = None) -> None:
        duration = time.monotonic() - run.start
        try:
            os.killpg(run.pid, signal.SIGKILL)  # whatever the program left in its group
        except (ProcessLookupError, PermissionError):
            pass
        for fd in list(run.fds):
            self.read_fd(run, fd)
        for fd in list(run.fds):
            self.sel.unregister(fd)
            os.close(fd)
        self.release_folder(run)
        if not run.responded:
            self.respond(self.compose(run, wait_status, duration, usage))
        if run.setup_fd is not None:
            os.close(run.setup_fd)
            run.setup_fd = None

    @staticmethod
    def setup_done(run: Running) -> bool:
        """Whether the child marked its setup done. Read once, when the job is composed: the child wrote the mark
        (and closed its end) before the program ran, so it is there by the time of a report or an exit."""
        if run.setup_done is None:
            try:
                run.setup_done = run.setup_fd is not None and os.read(run.setup_fd, 1) == child.SETUP_DONE
            except OSError:  # BlockingIOError: no mark, and the child still holds its end
                run.setup_done = False
        return run.setup_done

    def new_oom_kill(self) -> bool:
        """Whether the kernel's OOM killer has killed a process since the last time this was asked."""
        count = oom_kill_count()
        seen, self.oom_kills = self.oom_kills, count
        return count is not None and seen is not None and count > seen

    def compose(self, run: Running, wait_status: int | None, duration: float | None = None,
                usage: resource.struct_rusage | None = None) -> dict:
        result = None
        # Without the child's mark the program never ran: whatever ended the job is the sandbox's failure.
        program_ran = self.setup_done(run)
        if run.result:
            try:
                result = json.loads(run.result)
            except Exception:  # noqa: BLE001 - ValueError, RecursionError: the program can write here
                result = None
            if not isinstance(result, dict):
                result = None
        if run.killed_for is not None:
            result = {"status": run.killed_for, "exc_type": None,
                      "exc_message": f"killed: {run.killed_for}" if run.killed_for != "timeout" else
                      f"timed out after {run.job['timeout_s']} s"}
        elif result is None:
            result = status_from_wait(wait_status, usage, run.job, self.new_oom_kill) if wait_status is not None else {
                "status": "error", "exc_type": "SandboxError", "exc_message": "unreadable result"}
        result.pop(SANDBOX_FAILURE, None)  # only this server says so, never a child's report
        if not program_ran:
            result[SANDBOX_FAILURE] = True
        result.update(
            id=run.job["id"],
            stdout=run.out.decode("utf-8", "replace"),
            stderr=run.err.decode("utf-8", "replace"),
            duration_s=duration if duration is not None else time.monotonic() - run.start,
        )
        return result

    def handle_requests(self) -> None:
        try:
            chunk = os.read(self.req_fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
            self.sel.unregister(self.req_fd)
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            job: dict = {}
            try:
                job = json.loads(line)
                self.start(job)
            except Exception as e:  # noqa: BLE001 - e.g. fork() failing under memory pressure
                self.respond({"id": job.get("id"), "status": "error", "exc_type": "SandboxError",
                              "exc_message": f"could not start the job: {e!r}", SANDBOX_FAILURE: True, "stdout": "", "stderr": "",
                              "duration_s": 0.0})

    def serve(self) -> None:
        # Chosen here, after every import (preloaded modules included): a raw fork is only safe
        # while this process has a single thread.
        self.fork = _raw_fork() if threading.active_count() == 1 else os.fork
        os.set_blocking(self.req_fd, False)
        self.respond({"ready": True, "network_isolated": self.network_isolated, "disk_isolated": self.disk_isolated,
                      "host_read_only": self.host_read_only, "pid_isolated": self.pid_isolated, "ids_isolated": self.ids_isolated,
                      "tmp_root": self.tmp_root})
        while not (self.eof and not self.running):
            timeout = None
            if self.running:
                # Capped: epoll refuses a timeout past ~24 days (a job's timeout_s may be that long).
                timeout = min(max(0.0, min(r.deadline for r in self.running.values()) - time.monotonic()), MAX_WAIT_S)
            for key, _ in self.sel.select(timeout):
                if key.data == "req":
                    self.handle_requests()
                elif key.data == "wake":
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                else:
                    run = self.running.get(key.data)
                    if run is not None and key.fd in run.fds:
                        self.read_fd(run, key.fd)
            self.reap_exited()
            now = time.monotonic()
            for run in list(self.running.values()):
                if now >= run.deadline and run.killed_for is None:
                    self.kill(run, "timeout")
            if self.eof:
                for run in self.running.values():
                    self.kill(run, "killed")
            self.reap()


def _wait4(pid: int, options: int) -> tuple[int, int, resource.struct_rusage]:
    """``os.wait4``, which imports ``resource`` on every call: the guard keeps that module from programs
    (``prlimit`` reaches other processes), so it is lent back for the call. This server is
    single-threaded and forks no child meanwhile, so no program sees it."""
    blocked = "resource" in sys.modules and sys.modules["resource"] is None
    sys.modules["resource"] = resource
    try:
        return os.wait4(pid, options)
    finally:
        if blocked:
            sys.modules["resource"] = None


def _pidfd_works() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except OSError:
        return False


def oom_kill_count() -> int | None:
    """Processes the kernel's OOM killer has killed since boot, whatever their cgroup (None: unknown)."""
    try:
        with open("/proc/vmstat", "rb") as f:
            for line in f:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def status_from_wait(wait_status: int, usage: resource.struct_rusage | None = None, job: dict | None = None,
                     new_oom_kill: Callable[[], bool] = lambda: False) -> dict:
    """Status of a child that left no result: it exited early, closed its channel or was signalled.

    A SIGKILL the server did not send came from the hard CPU limit (a program that ignores SIGXCPU), the
    OOM killer or the program itself; ``usage`` (from ``wait4``) tells them apart: CPU time at the job's
    limit, then peak memory of half its limit or more (or an OOM kill the kernel counted meanwhile)."""
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU:
            return {"status": "timeout", "exc_type": None, "exc_message": "CPU time limit exceeded"}
        if sig == signal.SIGKILL:
            job = job or {}
            if usage is not None and usage.ru_utime + usage.ru_stime >= child.cpu_limit_s(job):
                return {"status": "timeout", "exc_type": None, "exc_message": "CPU time limit exceeded (killed by SIGKILL)"}
            memory = int(job.get("memory_bytes") or 0)
            if (usage is not None and memory and usage.ru_maxrss * 1024 >= memory // 2) or new_oom_kill():
                return {"status": "memory", "exc_type": None, "exc_message": "killed by SIGKILL (out of memory)"}
            return {"status": "killed", "exc_type": None, "exc_message": "killed by SIGKILL"}
        if sig == signal.SIGXFSZ:
            return {"status": "output_limit", "exc_type": None, "exc_message": "file size limit exceeded"}
        return {"status": "killed", "exc_type": None, "exc_message": f"killed by {name}"}
    code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else -1
    return {"status": "error", "exc_type": "SystemExit", "exc_message": f"exited with code {code} before finishing"}


def main() -> None:
    req_fd = os.dup(0)
    resp_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Made, and its parent opened, in the host's mount namespace: the server's view of that parent turns
    # read-only, so the folder goes through this descriptor (the host's mount) once the server ends.
    host_pid = os.getpid()  # this process outlives the server (PID 1 of its namespace, where there is one)
    tmp_root = os.path.realpath(tempfile.mkdtemp(prefix="semcoder-sandbox-"))
    parent_fd = os.open(os.path.dirname(tmp_root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def remove_tmp_root() -> None:
        unmount_job_folder(tmp_root)  # ``read_only_host``'s bind, and any job folder still mounted under it
        try:
            os.chmod(os.path.basename(tmp_root), 0o700, dir_fd=parent_fd)  # ``close_to_jobs``
        except OSError:
            pass
        rmtree(os.path.basename(tmp_root), dir_fd=parent_fd, ignore_errors=True)

    network_isolated, disk_isolated = isolate(network=os.environ.get("SEMCODER_SANDBOX_NETWORK", "isolate") == "isolate",
                                              disk=os.environ.get("SEMCODER_SANDBOX_DISK", "tmpfs") == "tmpfs")
    # The process outside the PID namespace removes it (also when PID 1 is killed); PID 1 keeps no
    # descriptor of a writable host folder.
    pid_isolated = enter_pid_namespace((req_fd, resp_fd), on_exit=remove_tmp_root)
    if pid_isolated:
        os.close(parent_fd)
    if pid_isolated and disk_isolated:  # never in the host's mount namespace
        mount_own_proc()
    server = ForkServer(req_fd, resp_fd, network_isolated, disk_isolated, pid_isolated, tmp_root)
    for name in filter(None, os.environ.get("SEMCODER_SANDBOX_PRELOAD", "").split(",")):
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - reported to the Sandbox, which raises it
            server.respond({"ready": False, "error": f"could not preload module {name!r}: {e!r}"})
            if not pid_isolated:
                remove_tmp_root()
            return
    server.host_read_only = server.disk_isolated and read_only_host(server.tmp_root)
    if server.host_read_only:
        close_to_jobs(server.tmp_root)
    server.ids_first, server.ids_count = job_id_block(host_pid)
    server.ids_isolated = probe_job_ids()
    child.prepare_server()
    gc.collect()
    gc.freeze()  # children share the server's objects without the collector touching (copying) them
    try:
        server.serve()
    except BrokenPipeError:
        pass
    finally:
        for run in server.running.values():
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except OSError:
                pass
            if run.tmpfs_bytes:
                unmount_job_folder(run.dir)
        for folders in server.free_tmpfs.values():
            for path in folders:
                unmount_job_folder(path)
        if not pid_isolated:
            remove_tmp_root()


if __name__ == "__main__":
    main()
