import json
import os
import time

import pytest

from semcoder_jax.execution import ExecResult, Job, Sandbox, SandboxConfig, SandboxError, run_program


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


def test_run_program_uses_a_shared_sandbox():
    r = run_program("x = 40", "x + 2")
    assert isinstance(r, ExecResult) and r.return_repr == "42"


def test_temp_folder_is_private_and_removed(sandbox):
    r1 = sandbox.run("import tempfile\nopen('mine.txt', 'w').write('a')\nprint(tempfile.gettempdir())")
    where = r1.stdout.strip()
    assert r1.status == "passed" and where.startswith("/")
    deadline = time.monotonic() + 5
    while os.path.exists(where) and time.monotonic() < deadline:  # removed when the child is reaped
        time.sleep(0.05)
    assert not os.path.exists(where)
    r2 = sandbox.run("import os\nprint(os.listdir('.'))")
    assert r2.stdout.strip() == "[]"


def test_config_defaults():
    c = SandboxConfig()
    assert c.memory_bytes == 4 << 30 and c.hash_seed == 0 and c.resolved_workers() >= 1


def test_closed_sandbox_refuses_jobs():
    box = Sandbox(workers=1)
    box.close()
    with pytest.raises(Exception, match="closed"):
        box.run("pass")


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
        while not server.children() and time.monotonic() < deadline:
            time.sleep(0.02)
        kids = server.children()
        assert kids
        os.kill(server.pid, signal.SIGKILL)
        t.join(10)
        assert holder["r"].status == "killed" and holder["r"].exc_type == "SandboxError"
        assert box.run("x = 1", "x + 1").return_repr == "2"  # a new fork server took over
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive  # the orphaned child died with its server


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
