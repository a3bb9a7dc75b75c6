import json
import os
import time

import pytest

from semcoder_jax.execution import ExecResult, Job, Sandbox, SandboxConfig, SandboxError, run_program, trace_call


def test_call_result_stdout_and_stderr(sandbox):
    r = sandbox.run("import sys\ndef f(a, b):\n    print('sum', a + b)\n    print('warn', file=sys.stderr)\n"
                    "    return [a, b]\n", "f(1, 2)")
    assert r.status == "passed"
    assert r.return_repr == "[1, 2]"
    assert r.stdout == "sum 3\n"
    assert r.stderr == "warn\n"
    assert r.duration_s > 0
    assert json.loads(json.dumps(r.to_dict()))["return_repr"] == "[1, 2]"


@pytest.mark.parametrize(
    "source, status, exc_type",
    [
        ("assert 1 + 1 == 3", "failed", "AssertionError"),
        ("1 / 0", "error", "ZeroDivisionError"),
        ("def f(:\n  pass", "error", "SyntaxError"),
        ("raise SystemExit(0)", "error", "SystemExit"),
        ("x = bytearray(8 << 30)", "memory", "MemoryError"),
        ("import signal\nsignal.raise_signal(signal.SIGTERM)", "killed", None),
    ],
)
def test_statuses(sandbox, source, status, exc_type):
    r = sandbox.run(source)
    assert (r.status, r.exc_type) == (status, exc_type)


def test_lone_surrogates_from_the_program_arrive_as_encodable_text(sandbox):
    """``str(exc)`` or a ``__repr__`` may hold lone surrogates; they reached the caller as such, and
    printing the result (``semcoder exec run``) or writing it as UTF-8 JSONL raised UnicodeEncodeError."""
    src = "class R:\n    def __repr__(self):\n        return 'r\\ud800'\ndef f():\n    raise ValueError('bad \\udc80 \\U0001F600')\n"
    r = sandbox.run(src, "f()")
    assert (r.exc_type, r.exc_message) == ("ValueError", "bad \\udc80 \U0001F600")
    assert sandbox.run(src, "R()").return_repr == "r\\ud800"
    t = trace_call(src, "f()", sandbox=sandbox)
    assert t.exception["message"] == "bad \\udc80 \U0001F600"
    t.to_json().encode()
    json.dumps(t.to_dict(), ensure_ascii=False).encode()


def test_timeout_kills_the_program(sandbox):
    r = sandbox.run("while True:\n    pass", timeout_s=0.5)
    assert r.status == "timeout"
    assert r.duration_s < 5


def test_output_cap():
    with Sandbox(max_output_bytes=1000, workers=1) as box:
        r = box.run("while True:\n    print('x' * 100)")
        assert r.status == "output_limit"
        assert len(r.stdout) <= 1000
        assert box.run("print('ok')").stdout == "ok\n"


def test_early_exit_never_passes(sandbox):
    r = sandbox.run("import os\nos._exit(0)\nassert False")
    assert r.status == "error"
    assert "before finishing" in r.exc_message


def test_environment_is_scrubbed(sandbox, monkeypatch):
    monkeypatch.setenv("SEMCODER_FAKE_API_KEY", "sk-secret-123")
    with Sandbox(workers=1) as box:  # started after the secret was set
        r = box.run("import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ', 'rb').read())")
    assert r.status == "passed"
    assert "sk-secret" not in r.stdout and "SEMCODER_FAKE_API_KEY" not in r.stdout


def test_network_is_unavailable(sandbox):
    r = sandbox.run("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)")
    assert r.status == "error"


def test_map_keeps_input_order_and_counts(sandbox):
    jobs = [Job("def f(x):\n    return x * x\n", f"f({i})") for i in range(40)] + ["print('bare')"]
    results = sandbox.map(jobs, concurrency=4)
    assert [r.return_repr for r in results[:40]] == [str(i * i) for i in range(40)]
    assert results[40].stdout == "bare\n" and results[40].status == "passed"


def test_map_progress_bar(sandbox, capsys):
    results = sandbox.map(["print(%d)" % i for i in range(5)], progress=True, desc="probe")
    assert [r.stdout for r in results] == ["%d\n" % i for i in range(5)]
    assert "probe" in capsys.readouterr().err


def test_job_timeout_overrides_default(sandbox):
    [r] = sandbox.map([Job("import time\ntime.sleep(5)", timeout_s=0.3)])
    assert r.status == "timeout"


def test_long_and_infinite_timeouts_do_not_take_the_fork_server_down():
    """A day-long ``timeout_s`` overflowed the fork server's epoll wait and an infinite one its rlimit and
    the caller's wait: the server exited, failing every job beside it."""
    with Sandbox(memory_bytes=1 << 30, workers=2) as box:
        pid = box._proc.pid
        assert box.run("import time\ntime.sleep(0.2)", "2", timeout_s=1e9).return_repr == "2"
        assert box._proc.pid == pid
        slow = box.submit_raw({"mode": "run", "source": "import time\ntime.sleep(0.5)", "call": "'survived'"})
        for _ in range(3):  # refused before a worker slot is taken for good
            with pytest.raises(ValueError, match="timeout_s"):
                box.map([Job("1", timeout_s=float("inf"))])
        assert box._wait(slow, {})["return_repr"] == "'survived'" and box._proc.pid == pid
        assert box._slots._value == 2
        assert [r.return_repr for r in box.map([Job("1", "2")] * 3)] == ["2"] * 3


def test_run_program_uses_a_shared_sandbox():
    r = run_program("x = 40", "x + 2")
    assert isinstance(r, ExecResult) and r.return_repr == "42"


def test_temp_folder_is_private_and_emptied(sandbox):
    r1 = sandbox.run("import tempfile\nopen('mine.txt', 'w').write('a')\nprint(tempfile.gettempdir())")
    where = r1.stdout.strip()
    assert r1.status == "passed" and where.startswith("/")
    deadline = time.monotonic() + 5
    while os.path.exists(os.path.join(where, "mine.txt")) and time.monotonic() < deadline:
        time.sleep(0.05)  # emptied when the child is reaped (on the host it was never there with a tmpfs)
    assert not os.path.exists(os.path.join(where, "mine.txt"))
    seen = []
    deadline = time.monotonic() + 10  # a folder is released when its child is reaped, after the reply
    while len(seen) < 6 or (sandbox.disk_isolated and len(set(seen)) == len(seen) and time.monotonic() < deadline):
        r2 = sandbox.run("import os, tempfile\nprint(os.listdir('.'), oct(os.stat('.').st_mode & 0o777))\n"
                         "print(tempfile.gettempdir())\nos.chmod('.', 0o755)\nopen('t', 'w').write('b')\nos.remove('t')")
        listing, folder = r2.stdout.splitlines()
        # Emptied folders are reused, and start as new ones do: the job's own group's alone, where it has one
        # (then the chmod below is refused: the folder is not the program's to open to others).
        assert listing == ("[] 0o70" if sandbox.ids_isolated else "[] 0o700")
        seen.append(folder)
    if sandbox.disk_isolated:
        assert len(set(seen)) < len(seen)


def test_config_defaults():
    c = SandboxConfig()
    assert c.memory_bytes == 4 << 30 and c.hash_seed == 0 and c.resolved_workers() >= 1


def test_closed_sandbox_refuses_jobs():
    box = Sandbox(workers=1)
    box.close()
    with pytest.raises(SandboxError, match="sandbox is closed"):
        box.run("pass")


def test_a_timeout_beyond_a_c_long_still_runs_the_program(sandbox):
    """The CPU limit was ``int(timeout_s) + 1`` seconds: a finite timeout past 2**63 s (``--timeout 1e300``,
    meaning "no limit") overflowed setrlimit and every job failed as "setup failed" without running."""
    r = sandbox.run("x = 1", "x + 1", timeout_s=1e300)
    assert (r.status, r.return_repr) == ("passed", "2"), r


def test_close_removes_the_fork_servers_folder(monkeypatch):
    """Only the reader thread removed the folder (the server cannot: its parent is read-only there); a
    sandbox closed at interpreter exit left it behind whenever that daemon thread did not run again."""
    import shutil
    import signal

    rmtree = shutil.rmtree

    def late_rmtree(*args, **kwargs):  # as a reader thread that has not been scheduled yet
        time.sleep(0.5)
        rmtree(*args, **kwargs)

    box = Sandbox(workers=1, memory_bytes=1 << 30)
    box.run("open('left', 'w').write('x')")
    folder = box._server_dir
    monkeypatch.setattr(shutil, "rmtree", late_rmtree)
    pid = os.fork()
    if pid == 0:  # a forked copy that closes its copy of the sandbox (at exit, say) leaves the folder alone
        try:
            signal.alarm(20)  # a lock held by another thread at the fork must not hang the suite
            box.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert box.run("x = 1", "x + 1").return_repr == "2"
    box.close()
    assert not os.path.exists(folder)


def test_lost_fork_server_fails_jobs_and_restarts():
    import signal
    import threading

    import psutil

    with Sandbox(workers=2) as box:
        box.run("pass")
        server = psutil.Process(box._proc.pid)
        holder = {}
        t = threading.Thread(target=lambda: holder.setdefault("r", box.run("import time\ntime.sleep(30)")))
        t.start()
        deadline = time.monotonic() + 5
        expected = 2 if box.pid_isolated else 1  # the job, and PID 1 of the namespace (``server`` waits for it)
        while len(server.children(recursive=True)) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        kids = server.children(recursive=True)
        assert kids
        os.kill(server.pid, signal.SIGKILL)
        t.join(10)
        assert holder["r"].status == "killed" and holder["r"].exc_type == "SandboxError" and holder["r"].sandbox_failure
        assert box.run("x = 1", "x + 1").return_repr == "2"  # a new fork server took over
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive  # the orphaned child died with its server


_ORPHAN = """
import os, sys
from semcoder_jax.execution import child
r, w = os.pipe()
if os.fork() == 0:  # the fork server, killed before its child asked to die with it
    child.SERVER_PID = os.getpid()
    if os.fork():
        os._exit(0)
    while os.getppid() == child.SERVER_PID:
        pass
    out = os.open(os.devnull, os.O_WRONLY)
    child.child_main({"mode": "run", "source": "open('ran', 'w').close()", "timeout_s": 5}, sys.argv[1], w, out, out)
os.close(w)
print(repr(os.read(r, 1 << 16)))
"""


def _run_script(script: str, arg):
    """``script`` in a fresh interpreter (no JAX threads, so it may fork and unshare) with ``arg``."""
    import subprocess
    import sys

    from semcoder_jax import PROJECT_ROOT

    return subprocess.run([sys.executable, "-c", script, str(arg)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def _json_from_script(script: str, arg):
    """What ``script`` printed as JSON; a string printed is the reason to skip (no namespace here)."""
    out = _run_script(script, arg)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    if isinstance(found, str):
        pytest.skip(found)
    return found


def test_a_child_whose_server_died_before_it_started_does_not_run(tmp_path):
    """A child asks to die with its fork server (PR_SET_PDEATHSIG), but a server killed before the child was
    scheduled left it to run its job to the end: an orphan that could outlive its Sandbox by hours."""
    out = _run_script(_ORPHAN, tmp_path)
    assert (out.returncode, out.stdout) == (0, "b''\n"), out
    assert not (tmp_path / "ran").exists()


def test_each_child_gets_its_own_random_state(sandbox):
    draws = [sandbox.run("import random\nprint(random.getrandbits(64))").stdout for _ in range(3)]
    assert len(set(draws)) == 3


def test_preload_imports_ahead_and_names_a_missing_module():
    probe = "import sys\nprint('unittest.mock' in sys.modules)"
    with Sandbox(preload=("unittest.mock",)) as box:
        assert box.run(probe).stdout.strip() == "True"
    with Sandbox() as box:
        assert box.run(probe).stdout.strip() == "False"
    with pytest.raises(SandboxError, match="no_such_module_xyz"):
        with Sandbox(preload=("no_such_module_xyz",)):
            pass


def test_default_workers_overlap_forking_with_running():
    assert SandboxConfig().resolved_workers() == (os.cpu_count() or 1) + 2
    assert SandboxConfig(workers=3).resolved_workers() == 3


def _can_unshare(flags: int) -> bool:
    """Whether a fresh process may make these namespaces (not this one: JAX's threads forbid it)."""
    import subprocess
    import sys

    probe = f"import ctypes, sys; sys.exit(ctypes.CDLL(None).unshare({flags}) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def test_disk_budget_bounds_all_files_together():
    from semcoder_jax.execution.forkserver import CLONE_NEWNS

    with Sandbox(max_disk_bytes=4 << 20, max_file_bytes=1 << 20, workers=1) as box:
        box.run("pass")
        if not box.disk_isolated:
            assert not _can_unshare(CLONE_NEWNS), "a mount namespace is possible here, but the sandbox made none"
            pytest.skip("this machine allows no mount namespace")
        many = box.run("for i in range(100):\n    open(f'f{i}', 'wb').write(b'x' * (200 << 10))\n")
        assert many.status == "error" and "No space left" in many.exc_message
        # Every job has a budget of its own: the next one starts empty.
        assert box.run("open('g', 'wb').write(b'x' * (900 << 10))\nprint('ok')").stdout == "ok\n"
    with Sandbox(max_disk_bytes=0, workers=1) as plain:
        assert plain.run("for i in range(10):\n    open(f'f{i}', 'wb').write(b'x' * (800 << 10))\n").status == "passed"
        assert not plain.disk_isolated


# Run by a fresh, single-threaded root process: it forks a child that becomes ``nobody`` (the
# interpreter's own files are root's only here) and makes the fork server's namespaces there.
_AS_NOBODY = """
import ctypes, json, os, socket, sys
from semcoder_jax.execution import forkserver

nobody, work = 65534, sys.argv[1]
r, w = os.pipe()
if os.fork() == 0:
    os.setgroups([]); os.setgid(nobody); os.setuid(nobody)
    ctypes.CDLL(None).prctl(4, 1)  # PR_SET_DUMPABLE: /proc/self stays ours, as for a process started by that user
    probe = os.fork()
    if probe == 0:  # may this user make a user namespace at all? (root may where others may not)
        os._exit(ctypes.CDLL(None).unshare(forkserver.CLONE_NEWUSER) != 0)
    if os.waitpid(probe, 0)[1]:
        os.write(w, b'"no user namespaces for unprivileged users"')
        os._exit(0)
    net, disk = forkserver.isolate(network=True, disk=True)
    read_only = forkserver.read_only_host(work)
    mounted = forkserver.mount_job_folder(work, 1 << 20)
    try:
        with open(os.path.join(work, "big"), "wb") as f:
            f.write(b"x" * (2 << 20))
        wrote = "all"
    except OSError as e:
        wrote = e.strerror
    try:
        open(os.path.join(os.path.dirname(work), "outside"), "w").close()  # a folder this user owns
        outside = "written"
    except OSError as e:
        outside = e.strerror
    try:
        socket.socket().connect(("127.0.0.1", 22))
        reached = True
    except OSError:
        reached = False
    os.write(w, json.dumps([net, disk, read_only, mounted, wrote, outside, reached, os.getuid()]).encode())
    os._exit(0)
os.close(w)
print(os.read(r, 1 << 16).decode())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unprivileged_server_isolates_through_a_user_namespace():
    """Without root, the fork server's namespaces come from a user namespace of its own, and the host's
    file system is read-only in it but for the sandbox's folder."""
    import shutil
    import tempfile
    from pathlib import Path


    root = Path(tempfile.mkdtemp())  # under /tmp: pytest's tmp_path is not reachable by other users
    work = root / "job"
    work.mkdir()
    os.chown(root, 65534, 65534)
    os.chown(work, 65534, 65534)
    try:
        found = _json_from_script(_AS_NOBODY, work)
        assert found == [True, True, True, True, "No space left on device", "Read-only file system", False, 65534]
        assert not os.listdir(work) and sorted(os.listdir(root)) == ["job"]  # the namespace's mounts stayed in it
    finally:
        shutil.rmtree(root)


_WITHOUT_MOUNT_SETATTR = """
import json, os, sys
from semcoder_jax.execution import forkserver

work = sys.argv[1]
r, w = os.pipe()
if os.fork() == 0:
    if not forkserver.isolate(network=False, disk=True)[1]:
        os.write(w, b'"no private mount namespace here"')
        os._exit(0)
    forkserver._set_attributes = lambda *args, **kwargs: False  # a kernel before 5.12: ENOSYS
    before = open("/proc/self/mountinfo").read()
    read_only = forkserver.read_only_host(work)
    open(os.path.join(os.path.dirname(work), "outside"), "w").close()
    os.write(w, json.dumps([read_only, open("/proc/self/mountinfo").read() == before]).encode())
    os._exit(0)
os.close(w)
print(os.read(r, 1 << 16).decode())
"""


def test_read_only_host_without_mount_setattr_leaves_every_mount_as_it_was(tmp_path):
    """Where the kernel has no ``mount_setattr``, ``read_only_host`` says so and takes back the bind mounts
    it made (its folder's and the devices'), so the fork server runs as before: host writable."""
    work = tmp_path / "job"
    work.mkdir()
    found = _json_from_script(_WITHOUT_MOUNT_SETATTR, work)
    assert found == [False, True] and (tmp_path / "outside").exists()


def test_a_killed_server_leaves_no_folder_behind():
    import signal

    with Sandbox(workers=1) as box:
        box.run("open('x', 'w').write('x')")
        server_dir = box._server_dir
        assert server_dir and os.path.isdir(server_dir)
        os.kill(box._proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while os.path.exists(server_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(server_dir)


_CALLER_CRASHES = """
import os, signal, sys
from semcoder_jax.execution import Sandbox
box = Sandbox(workers=1).__enter__()
box.run("open('x', 'w').write('x')")
print(box._server_dir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crashed_caller_leaves_no_folder_behind():
    """The fork server ends when its caller dies (end of input), but its folder's parent is read-only in
    the server's mount namespace and the caller's reader thread died with it: a folder left behind in the
    temp dir for every crashed caller."""
    out = _run_script(_CALLER_CRASHES, "")
    server_dir = out.stdout.strip()
    assert server_dir.startswith("/") and "semcoder-sandbox-" in server_dir, out
    deadline = time.monotonic() + 10
    while os.path.exists(server_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(server_dir)


def test_a_program_that_kills_itself_is_killed_not_out_of_memory(sandbox):
    """Every SIGKILL the server had not sent was reported as ``memory`` ("out of memory")."""
    r = sandbox.run("import signal\nsignal.raise_signal(signal.SIGKILL)")
    assert (r.status, r.exc_message) == ("killed", "killed by SIGKILL")


_IGNORES_SIGXCPU = """
import json, os, signal
from semcoder_jax.execution import child, forkserver
job = {"timeout_s": 0.5, "memory_bytes": 1 << 30}
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    child.set_limits(job)
    while True:
        pass
_, status, usage = os.wait4(pid, 0)
print(json.dumps([os.WTERMSIG(status), forkserver.status_from_wait(status, usage, job)]))
"""


def test_a_program_ignoring_sigxcpu_until_the_hard_cpu_limit_is_a_timeout():
    """The kernel's SIGKILL at the hard CPU limit (one second past the soft one, whose SIGXCPU the program
    ignored) was reported as ``memory``."""
    out = _run_script(_IGNORES_SIGXCPU, "")
    assert out.returncode == 0, out.stderr
    sig, result = json.loads(out.stdout)
    assert sig == 9 and result["status"] == "timeout" and "CPU time" in result["exc_message"]


def _rusage(cpu_s: float = 0.0, maxrss_kib: int = 80_000):
    import resource

    return resource.struct_rusage((cpu_s, 0.0, maxrss_kib) + (0,) * 13)


@pytest.mark.parametrize(
    "usage, oom_killed, status",
    [
        (_rusage(cpu_s=3.01), False, "timeout"),  # timeout_s 2: soft CPU limit 3 s, SIGKILL at 4 s
        (_rusage(maxrss_kib=3 << 20), False, "memory"),  # 3 GiB of a 4 GiB limit
        (_rusage(), True, "memory"),  # the kernel counted an OOM kill meanwhile
        (_rusage(cpu_s=2.5, maxrss_kib=1 << 20), False, "killed"),
    ],
)
def test_sigkill_is_told_apart_by_resource_usage(usage, oom_killed, status):
    from semcoder_jax.execution.forkserver import status_from_wait

    job = {"timeout_s": 2, "memory_bytes": 4 << 30}
    assert status_from_wait(9, usage, job, lambda: oom_killed)["status"] == status


_FORGED_FAILURE = ("import posix, sys\nsys.modules['semcoder_jax.execution.child']._write(99, b'{\"status\": \"killed\", \"exc_type\": \"SandboxError\", "
                   "\"sandbox_failure\": true}\\n')\nposix._exit(0)\n")


@pytest.mark.parametrize("source", ["class SandboxError(Exception):\n    pass\nraise SandboxError('retry me')\n", _FORGED_FAILURE])
def test_a_program_cannot_pass_its_failure_off_as_the_sandboxs(sandbox, source):
    """A result of status killed and exc_type SandboxError counted as a lost fork server: a program that wrote
    one on its result channel (or raised its own SandboxError) had its record retried on every run."""
    from semcoder_jax.execution import is_sandbox_failure

    response = sandbox.run_raw({"mode": "run", "source": source})
    assert response["exc_type"] == "SandboxError" and not is_sandbox_failure(response), response
    assert not ExecResult.from_response(response).sandbox_failure


def test_a_child_that_fails_before_the_program_runs_is_a_sandbox_failure():
    """A child whose setup failed came back as status error, exc_type SandboxError: every stage took it for
    the program's error (not executable, a failing test)."""
    from semcoder_jax.execution import is_sandbox_failure

    with Sandbox(memory_bytes=1 << 30, max_processes="not a number") as box:
        r = box.run("open('ran', 'w').close()")
    assert (r.status, r.exc_type, r.sandbox_failure) == ("error", "SandboxError", True), r
    assert r.exc_message.startswith("setup failed") and is_sandbox_failure(r)


def test_a_program_reading_its_result_channel_is_still_judged(sandbox):
    """The setup mark was the result channel's first byte: a program that reopened the channel read-only
    (``/proc/self/fd/99``) and read the mark before the fork server did (177 of 200 concurrent jobs) made its
    job a sandbox failure, which scoring reruns and then stops the whole run on."""
    src = ("import os\nfd = os.open('/proc/self/fd/99', os.O_RDONLY | os.O_NONBLOCK)\ntry:\n    x = os.read(fd, 1)\n"
           "except BlockingIOError:\n    x = b''\n")
    results = sandbox.map([Job(src, "len(x) < 2")] * 24)
    assert all((r.status, r.return_repr, r.sandbox_failure) == ("passed", "True", False) for r in results), results
