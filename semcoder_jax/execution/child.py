"""What runs inside the forked, sandboxed child: set up containment, run one job, report, exit.

The job arrives as a dict from the fork server; the result leaves as one JSON object on a private
file descriptor that the guard keeps the program from closing. The child always ends with
``os._exit`` so threads the program started, ``atexit`` hooks and buffered files cannot delay it.
"""

from __future__ import annotations

import builtins
import os
import random
import resource
import signal
import struct
import sys
import tempfile
from _json import encode_basestring_ascii as _encode_basestring_ascii
from _json import make_encoder as _c_make_encoder

from semcoder_jax.execution import guard

PROGRAM_FILENAME = "<program>"
CALL_FILENAME = "<call>"
RESULT_FD = 99
# Environment the program sees: nothing from the parent.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent", "OMP_NUM_THREADS": "1"}

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS = 1, 4, 8, 38
# capset(2) arguments that empty the effective, permitted and inheritable sets (version 3: two words each),
# or leave CAP_SETUID (bit 7) alone in the effective and permitted ones.
_CAP_HEADER, _NO_CAPS = struct.pack("Ii", 0x20080522, 0), bytes(24)
_SETUID_ONLY = struct.pack("6I", 1 << 7, 1 << 7, 0, 0, 0, 0)
try:
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl, _capset, _setfsuid = _libc["prctl"], _libc["capset"], _libc["setfsuid"]
    _prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    _setfsuid.argtypes = (ctypes.c_uint,)
    _prctl.restype = _capset.restype = _setfsuid.restype = ctypes.c_int
    del _libc
except (OSError, ImportError, AttributeError):  # not Linux/glibc: the server's kill on timeout still applies
    _prctl = _capset = _setfsuid = None

RESET_SIGNALS = True  # the server clears this when it supervises children without a SIGCHLD handler
SERVER_PID = 0  # set by ``prepare_server``

_exit = os._exit
_write = os.write  # the unguarded originals: the guard makes os.write/dup2/closerange spare RESULT_FD
_dup2 = os.dup2
_closerange = os.closerange
# What the child calls once the program has begun, taken now: a program may replace the builtins (a ``compile``
# or ``eval`` of its own made the call whatever it liked, a ``memoryview`` the report).
_compile, _exec, _eval = builtins.compile, builtins.exec, builtins.eval
_len, _memoryview = builtins.len, builtins.memoryview
_repr = builtins.repr
_str = builtins.str
_type = builtins.type
_issubclass = builtins.issubclass
# A class's own name, past any ``__name__`` its metaclass defines (a program's code, which may raise).
_class_name = type.__dict__["__name__"].__get__
# What builtins held before any program ran (taken by ``prepare_server``): restored for the report where encoding
# it failed.
_BUILTINS: dict = {}
# Written on the setup channel (``SETUP_FD``) once setup is done, which is then closed before the program
# runs: without it the child failed before the program ran (the sandbox's failure). Not on the result
# channel: a program can reopen that one read-only (``/proc/self/fd/99``) and take the mark first.
SETUP_DONE = b"\x06"
SETUP_FD = 100
# The report of last resort: written without any library code a program could have replaced.
_UNREPORTABLE = b'{"status": "error", "exc_type": "SandboxError", "exc_message": "unreportable result"}\n'


def cpu_limit_s(job: dict) -> int:
    """The job's soft CPU-time limit: SIGXCPU there, SIGKILL one second later (the hard limit)."""
    return min(int(job.get("timeout_s", 10.0)), 1 << 62) + 1  # setrlimit takes a C long


def set_limits(job: dict) -> None:
    memory = job.get("memory_bytes")
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = cpu_limit_s(job)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    fsize = job.get("max_file_bytes")
    if fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = job.get("max_open_files", 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    nproc = job.get("max_processes")
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _status_of(exc: BaseException) -> str:
    """By the exception's real class: ``isinstance`` would consult a ``__class__`` the program defines."""
    cls = _type(exc)
    if _issubclass(cls, AssertionError):
        return "failed"
    if _issubclass(cls, MemoryError):
        return "memory"
    return "error"


def _safe_str(exc: BaseException, limit: int) -> str:
    try:
        return _str(exc)[:limit]
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not stop the report
        return "<unprintable>"


def _run_program(job: dict) -> dict:
    """Modes: ``run`` (exec + optional call), ``trace`` (call under the tracer), ``cover`` (batch of
    calls with line/arc collection), ``audit`` (run with determinism instrumentation)."""
    mode = job.get("mode", "run")
    env: dict = {"__name__": "__main__", "__builtins__": builtins}
    out: dict = {"status": "passed", "return_repr": None, "exc_type": None, "exc_message": None, "payload": None}
    max_repr = int(job.get("max_return_repr", 1_000_000))
    audit_log = None
    if mode == "audit":
        from semcoder_jax.execution import determinism

        audit_log = determinism.instrument()
    renumber = None
    if job.get("identity_hash") in ("numbered", "reversed"):
        from semcoder_jax.execution import determinism

        renumber = determinism.number_identity_hashes(reverse=job["identity_hash"] == "reversed")
    collector = None
    try:
        code = _compile(job["source"], PROGRAM_FILENAME, "exec")
        if mode == "cover":
            from semcoder_jax.execution import coverage

            out["payload"] = coverage.run_batch(code, job["func_name"], job["inputs"], job.get("per_input_timeout_s", 1.0))
            return out
        if mode == "trace" and job.get("call") is not None:
            # Before the program runs: the import (``builtins.__import__``) and the source's analysis (``ast``) are
            # the program's to replace once it has.
            from semcoder_jax.execution import tracer

            collector = tracer.Collector(job["source"], **job.get("trace_options", {}))
        if audit_log is not None:
            audit_log.active = True
        _exec(code, env)
        if renumber is not None:
            renumber()
        call = job.get("call")
        if call is not None:
            call_code = _compile(call, CALL_FILENAME, "eval")
            if collector is not None:
                try:
                    value = collector.run(call_code, env)
                finally:
                    out["payload"] = collector.result()
            else:
                value = _eval(call_code, env)
            r = _repr(value)
            out["return_repr"] = r if _len(r) <= max_repr else r[:max_repr]
    except BaseException as e:  # noqa: BLE001 - every outcome of untrusted code is a result
        out["status"] = _status_of(e)
        out["exc_type"] = _class_name(_type(e))
        out["exc_message"] = _safe_str(e, 2000)
    if audit_log is not None:
        audit_log.active = False
        out["payload"] = audit_log.report()
    return out


def prepare_server() -> None:
    """Work done once in the fork server instead of in every child: the environment, standard streams,
    ``argv`` and recursion limit that programs see, the reserved result descriptor and the
    job-independent part of the guard. The server's fds 0 and 1 are already /dev/null; after fork, 1
    and 2 become the capture pipes. The server must not need what the guard disables."""
    os.environ.clear()
    os.environ.update(CLEAN_ENV)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.argv = [PROGRAM_FILENAME]
    sys.setrecursionlimit(1000)
    placeholder = os.open(os.devnull, os.O_RDONLY)
    _dup2(placeholder, RESULT_FD)  # so no pipe of the server's ever takes the result channel's number
    os.close(placeholder)
    guard.protect_fd(RESULT_FD)
    guard.disable_destructive()
    _BUILTINS.update(builtins.__dict__)
    global SERVER_PID
    SERVER_PID = os.getpid()


def child_main(job: dict, sandbox_dir: str, result_fd: int, out_fd: int, err_fd: int, ident: int | None = None,
               setup_fd: int | None = None) -> None:
    """Entry point after ``fork``; never returns. ``sandbox_dir`` is a resolved path; ``ident``: the job's own
    user and group id (``take_identity``), None to keep the server's. Each statement here writes to pages
    shared with the server, which the kernel then copies: keep it short."""
    try:
        random.seed()  # as os.fork's hook would: programs must not all share the server's random state
        os.setsid()
        die_with_parent(SERVER_PID)
        _dup2(out_fd, 1)
        _dup2(err_fd, 2)
        _dup2(result_fd, RESULT_FD)
        if setup_fd is not None:
            _dup2(setup_fd, SETUP_FD)
        _closerange(3, RESULT_FD)
        _closerange(RESULT_FD + 1 if setup_fd is None else SETUP_FD + 1, 4096)
        if RESET_SIGNALS:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(sandbox_dir)
        tempfile.tempdir = sandbox_dir
        set_limits(job)
        if ident is not None:
            take_identity(ident)
            die_with_parent(SERVER_PID)  # a change of credentials clears the parent-death signal
        drop_capabilities()
        guard.install_audit_policy(sandbox_dir, trusted=_trusted_code(job))
        if setup_fd is not None:
            _write(SETUP_FD, SETUP_DONE)
            _closerange(SETUP_FD, SETUP_FD + 1)
    except BaseException as e:  # noqa: BLE001
        _report({"status": "error", "exc_type": "SandboxError", "exc_message": f"setup failed: {e!r}"})
        _exit(0)
    result = _run_program(job)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have closed or replaced it
            pass
    _report(result)
    _exit(0)


def die_with_parent(parent: int) -> None:
    """Be killed when the process that forked this one exits, and exit now if ``parent`` (nonzero)
    already has: nobody waits for this process, and a new session or group would keep it from the
    fork server's kill."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent and os.getppid() != parent:
        _exit(0)


def take_identity(ident: int) -> None:
    """Run as user and group ``ident`` (real, effective and saved ids; no supplementary groups), a pair no
    other job of this server uses at the same time, while files are still opened as the server's user
    (the file-system uid: the interpreter and its modules may lie where only that user reaches, e.g.
    under ``/root``). The kernel's own checks then keep jobs apart however a program gets around the
    audit policy: a signal or ``pidfd_send_signal`` reaches no process of another job nor the server,
    ``RLIMIT_NPROC`` counts this job's processes only, and another job's folder (its group's alone)
    stays closed. Call as root, before ``drop_capabilities``; raises ``OSError`` where the kernel refuses."""
    fs_uid = os.getuid()
    if _prctl is None or _prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno() if _prctl else 0, "prctl(PR_SET_KEEPCAPS) failed")
    os.setgroups([])
    os.setresgid(ident, ident, ident)
    os.setresuid(ident, ident, ident)  # the file-system uid follows; KEEPCAPS keeps CAP_SETUID to undo that
    if _capset(_CAP_HEADER, _SETUID_ONLY) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    _setfsuid(fs_uid)
    if _setfsuid(0xFFFFFFFF) != fs_uid:  # an invalid id changes nothing and returns the current one
        raise PermissionError(f"could not keep the file-system uid {fs_uid}")
    _prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)


def drop_capabilities() -> None:
    """Give up every capability, for good (no exec can bring one back). The fork server runs as root, or
    as root of a user namespace of its own; a program that got round the audit policy kept root's powers
    in the kernel: remount the host read-write, open another root process's ``/proc/<pid>/root`` (its
    view of the host's files, outside the read-only mounts) or ``/proc/<pid>/fd``. Not dumpable either: every
    job runs as the same user, and another job's ``/proc/<pid>/fd/99`` is its result channel. Best effort: where
    ``capset`` is refused the rest of the sandbox still applies."""
    if _prctl is not None:
        _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        _capset(_CAP_HEADER, _NO_CAPS)


def _trusted_code(job: dict) -> frozenset:
    """Code objects allowed to fork and kill in this child: coverage's, for its batch of inputs."""
    if job.get("mode") != "cover":
        return frozenset()
    from semcoder_jax.execution import coverage  # imported by the fork server already

    return coverage.TRUSTED_CODE


def _unencodable(value: object) -> None:
    raise TypeError(f"Object of type {_class_name(_type(value))} is not JSON serializable")


def _encode(result: dict) -> bytes:
    """``json.dumps(result)`` as one line, by ``_json``'s C encoder taken when this module was imported: ``json.dumps``
    calls ``JSONEncoder.encode``, which a program can replace (its return value then was the report)."""
    encoder = _c_make_encoder({}, _unencodable, _encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return ("".join(encoder(result, 0)) + "\n").encode("utf-8", "backslashreplace")


def _report(result: dict) -> None:
    """Write ``result`` to the channel. Where encoding it fails (a payload JSON cannot hold, a builtin the program
    replaced), builtins are restored and it is tried again, then an ``unreportable result`` error without the
    payload, then a fixed line."""
    try:
        data = _encode(result)
    except BaseException:  # noqa: BLE001
        try:
            builtins.__dict__.update(_BUILTINS)
            data = _encode(result)
        except BaseException as e:  # noqa: BLE001
            try:
                data = _encode({"status": "error", "exc_type": "SandboxError", "exc_message": f"unreportable result: {e!r}"[:2000]})
            except BaseException:  # noqa: BLE001
                data = _UNREPORTABLE
    view = _memoryview(data)
    try:
        while view:
            n = _write(RESULT_FD, view)
            view = view[n:]
    except BaseException:  # noqa: BLE001 - the parent then reads the exit status
        _exit(3)
