"""Hostile programs interleaved with benign ones: right status each, pool keeps serving, nothing outside
the sandbox changes, no process is left behind."""

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from semcoder_jax.execution import Job, Sandbox, run_inputs

SECRET = "sk-fake-secret-do-not-leak-1234"
# The audit hook is a Python closure that ``gc`` finds: emptying its sets of refused events and modules, and
# letting every path through, switches the policy off, as a program that got around it would.
POLICY_OFF = "import gc\nfor hook in [f for f in gc.get_objects() if type(f).__name__ == 'function' and f.__name__ == 'hook'" \
             " and f.__module__.endswith('guard')]:\n    for name, cell in zip(hook.__code__.co_freevars, hook.__closure__):\n" \
             "        if isinstance(cell.cell_contents, frozenset):\n            cell.cell_contents = frozenset()\n" \
             "import sys\nsys.modules['semcoder_jax.execution.guard']._resolve = lambda path, root: root\n"

# The child's own unguarded reference to ``os.write``: what a program past the guard writes its channel with.
HARNESS_WRITE = "import sys\nwrite = sys.modules['semcoder_jax.execution.child']._write\n"


def _holders(path: Path) -> list[psutil.Process]:
    """The processes that hold ``path`` open."""
    found = []
    for p in psutil.process_iter():
        try:
            if any(f.path == str(path) for f in p.open_files()):
                found.append(p)
        except psutil.Error:
            pass
    return found


def hostile_programs(victim: Path, sentinel: Path, parent_pid: int) -> list[tuple[str, Job, set[str], str | None]]:
    """(name, job, allowed statuses, text that must not appear in stdout)."""
    v, s = str(victim), str(sentinel)
    return [
        ("infinite loop", Job("while True:\n    pass", timeout_s=1), {"timeout"}, None),
        ("fork bomb", Job("import os\nwhile True:\n    os.fork()"), {"error"}, None),
        ("fork bomb via posix", Job("import posix\nwhile True:\n    posix.fork()"), {"error"}, None),
        ("multiprocessing", Job("import multiprocessing as mp\nmp.Process(target=print).start()"), {"error"}, None),
        ("subprocess", Job("import subprocess\nsubprocess.run(['rm', '-rf', %r])" % v), {"error"}, None),
        ("posix_spawn", Job("import posix\nposix.posix_spawn('/bin/rm', ['rm', %r], {})" % s), {"error"}, None),
        ("memory bomb", Job("x = bytearray(16 << 30)"), {"memory"}, None),
        ("gradual memory bomb", Job("l = []\nwhile True:\n    l.append(' ' * 10**7)"), {"memory"}, None),
        ("deep recursion", Job("def r(n):\n    return r(n + 1)\nr(0)"), {"error"}, None),
        ("unbounded recursion limit", Job("import sys\nsys.setrecursionlimit(10**9)\ndef r(n):\n    return r(n + 1)\nr(0)",
                                          timeout_s=2), {"memory", "killed", "timeout"}, None),
        ("os.system rm", Job("import os\nos.system('rm -rf %s')" % v), {"error"}, None),
        ("delete file outside", Job("import os\nos.remove(%r)" % s), {"error"}, None),
        ("delete via posix", Job("import posix\nposix.unlink(%r)" % s), {"error"}, None),
        ("pathlib unlink", Job("import pathlib\npathlib.Path(%r).unlink()" % s), {"error"}, None),
        ("rmtree outside", Job("import shutil\nshutil.rmtree(%r)" % v), {"error"}, None),
        ("overwrite file outside", Job("open(%r, 'w').write('pwned')" % s), {"error"}, None),
        ("create file outside", Job("open(%r, 'x').write('new')" % str(victim / "new.txt")), {"error"}, None),
        ("rename outside", Job("import posix\nposix.rename(%r, %r)" % (s, s + ".moved")), {"error"}, None),
        ("read env secret", Job("import os\nprint(os.environ.get('SEMCODER_FAKE_SECRET'), dict(os.environ))"),
         {"passed"}, SECRET),
        ("read parent environ", Job("print(open('/proc/%d/environ').read())" % parent_pid), {"error"}, SECRET),
        ("socket", Job("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)"), {"error"}, None),
        ("raw socket", Job("import _socket\n_socket.socket().connect(('127.0.0.1', 22))"), {"error"}, None),
        ("kill parent", Job("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), {"error"}, None),
        ("kill test process", Job("import posix\nposix.kill(%d, 9)" % parent_pid), {"error"}, None),
        ("kill process group", Job("import posix\nposix.killpg(0, 9)"), {"error"}, None),
        ("ctypes libc", Job("import ctypes\nctypes.CDLL(None).kill(%d, 9)" % parent_pid), {"error"}, None),
        ("os._exit", Job("import os\nos._exit(0)"), {"error"}, None),
        ("sys.exit", Job("import sys\nsys.exit(0)"), {"error"}, None),
        ("exit builtin", Job("exit()"), {"error"}, None),
        ("close stdout", Job("import os\nos.close(1)\nprint('gone')", "1 + 1"), {"passed"}, None),
        ("close every fd", Job("import os\nos.closerange(0, 1 << 16)", "'still here'"), {"passed"}, None),
        ("forge the result channel", Job("import os\nos.write(99, b'{\"status\": \"passed\"}\\n')\nos._exit(0)"),
         {"error"}, None),
        ("print a gigabyte", Job("while True:\n    print('x' * 10**6)"), {"output_limit"}, None),
        ("flood stderr", Job("import sys\nwhile True:\n    sys.stderr.write('y' * 10**5)"), {"output_limit"}, None),
        ("change cwd", Job("import os\nos.chdir('/')"), {"error"}, None),
        ("change cwd via posix", Job("import posix\nposix.chdir('/')"), {"error"}, None),
        ("patch builtins", Job("import builtins\nbuiltins.repr = lambda x: 'pwned'\nbuiltins.print = None", "6 * 7"),
         {"passed"}, None),
        ("ignore signals", Job("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU):\n"
                               "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", timeout_s=1), {"timeout"}, None),
        ("thread outlives the call", Job("import threading, time\nthreading.Thread(target=time.sleep, args=(100,)).start()",
                                         "'returned'"), {"passed"}, None),
        ("new session", Job("import os\nos.setsid()"), {"error"}, None),
        ("too many files", Job("fs = [open('f%d' % i, 'w') for i in range(100000)]"), {"error"}, None),
        ("huge file", Job("open('big', 'wb').write(b'x' * (200 << 20))"), {"error"}, None),
        ("read stdin", Job("input()"), {"error"}, None),
    ]


BENIGN = [
    (Job("def f(x):\n    return sorted(x)[::-1]\n", "f([3, 1, 2])"), "[3, 2, 1]", ""),
    (Job("import collections\nc = collections.Counter('abracadabra')\nprint(c.most_common(1))", "c['a']"), "5",
     "[('a', 5)]\n"),
    (Job("import math\ndef g(n):\n    return math.factorial(n)\n", "g(10)"), "3628800", ""),
    (Job("print('hello')\nprint(repr('x'))", "len('abc')"), "3", "hello\n'x'\n"),
]


@pytest.mark.slow
def test_hostile_programs_are_contained(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMCODER_FAKE_SECRET", SECRET)
    victim = tmp_path / "victim"
    victim.mkdir()
    sentinel = victim / "sentinel.txt"
    sentinel.write_text("precious\n")
    (victim / "sub").mkdir()
    (victim / "sub" / "data.bin").write_bytes(os.urandom(256))

    def snapshot() -> dict:
        return {str(p.relative_to(tmp_path)): (p.is_dir(), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
                for p in sorted(tmp_path.rglob("*"))}

    before = snapshot()
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    hostile = hostile_programs(victim, sentinel, os.getpid())
    assert len(hostile) >= 25
    jobs, expect = [], []
    for i, (name, job, statuses, secret) in enumerate(hostile):
        jobs.append(job)
        expect.append(("hostile", name, statuses, secret))
        bjob, ret, out = BENIGN[i % len(BENIGN)]
        jobs.append(bjob)
        expect.append(("benign", ret, out, None))

    with Sandbox(memory_bytes=1 << 30, timeout_s=10, max_output_bytes=1 << 20, max_file_bytes=64 << 20) as box:
        results = box.map(jobs, concurrency=4)
        for (kind, a, b, secret), r in zip(expect, results):
            if kind == "hostile":
                assert r.status in b, f"{a}: got {r.status} ({r.exc_type}: {r.exc_message})"
                if secret:
                    assert secret not in r.stdout + r.stderr + (r.exc_message or ""), a
            else:
                assert (r.status, r.return_repr, r.stdout) == ("passed", a, b)
        by_name = {name: r for (kind, name, *_), r in zip(expect, results) if kind == "hostile"}
        assert by_name["patch builtins"].return_repr == "42"
        assert by_name["close every fd"].return_repr == "'still here'"
        assert by_name["thread outlives the call"].duration_s < 5
        # The pool keeps serving after all that.
        again = box.map([j for j, _, _ in BENIGN] * 3)
        assert [r.return_repr for r in again] == [ret for _, ret, _ in BENIGN] * 3

    assert sentinel.read_text() == "precious\n"
    assert snapshot() == before
    leftover = [p for p in psutil.Process().children(recursive=True) if p.pid not in children_before]
    assert not leftover, leftover


def test_native_escapes_from_the_audit_policy_are_refused(sandbox, tmp_path):
    """Ways around the audit hook: ``_posixsubprocess`` (what multiprocessing's spawn uses) runs programs
    unguarded, a subinterpreter (``_xxsubinterpreters``, ``_testcapi``) has no audit hook, ``cffi``
    calls libc; a directory descriptor opened outside the sandbox folder lets ``dir_fd=`` write
    or delete there while the audit event names only a relative path; SQLite writes files without an
    ``open`` event."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "sentinel.txt").write_text("precious\n")
    shell = f"echo pwned > {victim}/marker"
    inner = f"import os; os.system({shell!r})"
    programs = {
        "fork_exec": "import _posixsubprocess, posix\nr, w = posix.pipe()\n"
                     f"_posixsubprocess.fork_exec([b'/bin/sh', b'-c', {shell.encode()!r}], [b'/bin/sh'], True, (), None,"
                     " None, -1, -1, -1, -1, -1, -1, r, w, False, False, -1, None, None, None, -1, None, False)",
        "fork_exec reimported": "import sys, subprocess\ndel sys.modules['_posixsubprocess']\nimport _posixsubprocess",
        "subinterpreter": "import _xxsubinterpreters as si\n"
                          f"si.run_string(si.create(), {inner!r})",
        "testcapi subinterpreter": f"import _testcapi\n_testcapi.run_in_subinterp({inner!r})",
        "cffi": "import _cffi_backend as b\nlib = b.load_library(None)\n"
                "f = lib.load_function(b.new_function_type((b.new_pointer_type(b.new_primitive_type('char')),),"
                f" b.new_primitive_type('int'), False), 'system')\nf({shell.encode()!r})",
        "dir_fd create": f"import os\nfd = os.open({str(victim)!r}, os.O_RDONLY)\n"
                         "os.close(os.open('marker', os.O_WRONLY | os.O_CREAT, dir_fd=fd))",
        "dir_fd unlink": f"import posix\nfd = posix.open({str(victim)!r}, posix.O_RDONLY)\n"
                         "posix.unlink('sentinel.txt', dir_fd=fd)",
        "dir_fd from a Path": f"import os, pathlib\nfd = os.open(pathlib.Path({str(victim)!r}), os.O_RDONLY)\n"
                              "os.close(os.open('marker', os.O_WRONLY | os.O_CREAT, dir_fd=fd))",
        "dir_fd via /proc/self/root": f"import posix\nfd = posix.open('/proc/self/root{victim}', posix.O_RDONLY)\n"
                                      "posix.unlink('sentinel.txt', dir_fd=fd)",
        "sqlite3 file outside": f"import sqlite3\nsqlite3.connect({str(victim / 'db')!r}).execute('create table t(x)')",
        "sqlite3 attach outside": "import sqlite3\nc = sqlite3.connect(':memory:')\n"
                                  f"c.execute('attach database ? as o', ({str(victim / 'db')!r},))\nc.execute('create table o.t(x)')",
    }
    results = sandbox.map([Job(src) for src in programs.values()])
    for name, r in zip(programs, results):
        assert r.status == "error" and "sandbox:" in (r.exc_message or ""), (name, r)
    assert sorted(p.name for p in victim.iterdir()) == ["sentinel.txt"]
    # What programs legitimately do still works: folders inside the sandbox, reading files outside it.
    ok = sandbox.run("import os\nos.mkdir('d')\nfd = os.open('d', os.O_RDONLY)\n"
                     "os.close(os.open('x', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\n"
                     f"text = open({str(victim / 'sentinel.txt')!r}).read()\nimport json, fractions", "text")
    assert (ok.status, ok.return_repr) == ("passed", "'precious\\n'"), ok


def test_flooding_the_result_channel_is_an_output_limit():
    """The result channel was read without a cap: a program writing to it (``posix.write`` is not the
    guarded ``os.write``) grew the fork server by gigabytes a second until the job's deadline."""
    with Sandbox(memory_bytes=1 << 30, timeout_s=3) as box:
        r = box.run(HARNESS_WRITE + "b = b'x' * (1 << 20)\nwhile True:\n    write(99, b)")
        assert r.status == "output_limit", r  # killed for the cap, so before the deadline, which would read "timeout"
        assert box.run("x = 1", "x + 1").return_repr == "2"


def test_a_malformed_result_line_does_not_take_the_fork_server_down(sandbox):
    """A result line that is JSON but not an object, or nested past the decoder's recursion limit, used
    to raise in the fork server, which exited and failed every job running beside it."""
    pid = sandbox._proc.pid
    forged = [HARNESS_WRITE + "write(99, b'[1]\\n')\nimport posix\nposix._exit(0)",
              HARNESS_WRITE + "write(99, b'[' * 100000 + b'\\n')\nimport posix\nposix._exit(0)"]
    slow = Job("import time\ntime.sleep(0.5)", "'survived'")
    results = sandbox.map([slow, *(Job(src) for src in forged)])
    assert (results[0].status, results[0].return_repr) == ("passed", "'survived'"), results[0]
    assert [r.status for r in results[1:]] == ["error", "error"], results
    assert sandbox._proc.pid == pid


def test_a_program_that_writes_its_result_and_runs_on_blocks_no_other_job():
    """The early answer to a complete result line also took the child's pidfd as its exit and waited for
    it: a program that wrote the line itself and slept held the fork server (every other job, and its own
    deadline) until it woke."""
    with Sandbox(memory_bytes=1 << 30, timeout_s=1) as box:
        start = time.monotonic()
        results = box.map([Job(HARNESS_WRITE + "import time\nwrite(99, b'{}\\n')\ntime.sleep(30)"),
                           Job("import time\ntime.sleep(0.3)", "'other'")])
        assert results[1].return_repr == "'other'", results
        assert time.monotonic() - start < 10
        assert box.run("x = 1", "x + 1").return_repr == "2"


FORGED_PASS = b'{"status": "passed", "return_repr": "1"}\n'
# Each a way to put ``FORGED_PASS`` (held in ``L``, and in the file ``f`` of the job's folder) on the result channel.
FORGE_ROUTES = {
    "posix.write": "posix.write(99, L)",
    "os.writev": "os.writev(99, [L])",
    "os.pwrite": "os.pwrite(99, L, 0)",
    "os.pwritev": "os.pwritev(99, [L], 0)",
    "os.sendfile": "os.sendfile(99, os.open('f', os.O_RDONLY), 0, len(L))",
    "os.sendfile by keyword": "os.sendfile(out_fd=99, in_fd=os.open('f', os.O_RDONLY), offset=0, count=len(L))",
    "os.splice": "os.splice(os.open('f', os.O_RDONLY), 99, len(L))",
    "os.copy_file_range": "os.copy_file_range(os.open('f', os.O_RDONLY), 99, len(L))",
    "os.dup": "posix.write(os.dup(99), L)",
    "posix.dup": "posix.write(posix.dup(99), L)",
    "os.dup2 from the channel": "os.dup2(99, 50)\nposix.write(50, L)",
    "posix.dup2 from the channel": "posix.dup2(99, 50)\nposix.write(50, L)",
    "an __index__ that changes": "class Fd:\n    n = 0\n    def __index__(self):\n        Fd.n += 1\n"
                                "        return 1 if Fd.n == 1 else 99\nposix.write(Fd(), L)",
    "os.fdopen": "f = os.fdopen(99, 'wb')\nf.write(L)\nf.flush()",
    "io.FileIO": "io.FileIO(99, 'w').write(L)",
    "open(99)": "f = open(99, 'wb', closefd=False)\nf.write(L)\nf.flush()",
    "open of a copy": "f = open(os.dup(99), 'wb')\nf.write(L)\nf.flush()",
    "/proc/self/fd/99": "f = open('/proc/self/fd/99', 'wb')\nf.write(L)\nf.flush()",
    "/dev/fd/99": "posix.write(os.open('/dev/fd/99', os.O_WRONLY), L)",
    "socket.fromfd": "import socket\nsocket.fromfd(99, socket.AF_UNIX, socket.SOCK_STREAM).send(L)",
    "socket of the fd": "import socket\nsocket.socket(fileno=99).send(L)",
    "mmap": "import mmap\nmmap.mmap(99, 64).write(L)",
    "fcntl F_DUPFD": "import fcntl\nposix.write(fcntl.fcntl(99, fcntl.F_DUPFD, 50), L)",
    "os.login_tty": "os.login_tty(99)\nposix.write(1, L)",
    "faulthandler": "import faulthandler\nfaulthandler.dump_traceback(99)",
    "os.eventfd_write": "M = L[:-1] + b' ' * (-len(L) % 8) + b'\\n'\nfor i in range(0, len(M), 8):\n"
                        "    os.eventfd_write(99, int.from_bytes(M[i:i + 8], 'little'))",
    # ``FileIO`` takes an opener's descriptor with no audit event of its own: ``open``, the class, a subclass.
    "open's opener": "f = open('g', 'wb', opener={'g': 99}.get)\nf.write(L)\nf.flush()",
    "FileIO's opener": "type(sys.stdout.buffer.raw)('g', 'w', opener=lambda path, flags: 99).write(L)",
    "a FileIO subclass's opener": "class F(io.FileIO):\n    pass\nF('g', 'a', opener=lambda path, flags: 99).write(L)",
    # What the guard and the report called through ``builtins``, ``stat``, ``_imp`` or ``json``, the program replaces.
    "builtins.len": "import builtins\nbuiltins.len = lambda x: 0\nposix.write(99, L)",
    "builtins.isinstance and stat.S_ISFIFO": "import builtins, fcntl, stat\nbuiltins.isinstance = lambda x, t: False\n"
                                             "stat.S_ISFIFO = lambda m: False\nposix.write(fcntl.fcntl(99, fcntl.F_DUPFD, 50), L)",
    "a fresh posix, builtins.getattr": "import _imp, builtins, importlib.machinery as m\n"
                                       "spec = m.ModuleSpec('posix', m.BuiltinImporter)\nbuiltins.getattr = lambda *a: 'time'\n"
                                       "_imp.create_builtin(spec).write(99, L)",
    "a fresh posix, a spec's name that changes": "import _imp\nclass Spec:\n    n, loader = 0, None\n    @property\n"
                                                "    def name(self):\n        Spec.n += 1\n"
                                                "        return 'time' if Spec.n == 1 else 'posix'\n_imp.create_builtin(Spec()).write(99, L)",
    "json.JSONEncoder.encode": "import json\njson.JSONEncoder.encode = lambda self, o: L.decode()",
    "builtins.memoryview": "import builtins\nview = builtins.memoryview\nbuiltins.memoryview = lambda data: view(L)",
}


@pytest.mark.parametrize("patch", ["builtins.eval = lambda *a: 'ok'",
                                   "compile = builtins.compile\nbuiltins.compile = lambda s, f, m: compile(\"'ok'\", f, m)"],
                         ids=["eval", "compile"])
def test_a_program_cannot_replace_its_call(sandbox, patch):
    """The child compiled and evaluated the job's call through ``builtins``, which the program's top level had
    replaced: the call was skipped (a check that fails passed) or swapped for another."""
    r = sandbox.run(f"import builtins\n{patch}\ndef check():\n    assert False\n", "check()")
    assert (r.status, r.exc_type) == ("failed", "AssertionError"), r


@pytest.mark.parametrize("end", ["posix._exit(0)", "assert False"])
@pytest.mark.parametrize("route", FORGE_ROUTES.values(), ids=FORGE_ROUTES.keys())
def test_a_program_cannot_forge_its_result(sandbox, route, end):
    """A program wrote a passing result on the result channel with ``posix.write`` (or a copy of the channel,
    ``sendfile``...) and ended before the child's report (``posix._exit``), or failed after it: it passed."""
    source = f"import io, os, posix, sys\nL = {FORGED_PASS!r}\nopen('f', 'wb').write(L)\n{route}\n{end}\n"
    r = sandbox.run(source)
    assert r.status in ("error", "failed") and not r.sandbox_failure, r


@pytest.mark.xfail(strict=True, reason="not closed: see guard.py's docstring")
@pytest.mark.parametrize("route", ["sys.modules['semcoder_jax.execution.child']._write(99, L)",
                                   ("init = next(c.cell_contents for c in io.FileIO.__init__.__closure__\n"
                                    "            if type(c.cell_contents).__name__ == 'wrapper_descriptor')\n"
                                    "f = io.FileIO.__new__(io.FileIO)\ninit(f, 'g', 'wb', True, lambda p, fl: 99)\nf.write(L)")],
                         ids=["child's write", "FileIO's own __init__"])
def test_the_harness_own_references_are_left_open(sandbox, route):
    """The harness's own references (the child's unguarded ``_write``, the original ``FileIO.__init__`` in the opener
    check's closure) are the program's too. Written, then ended before the child's report, the forged result is the job's."""
    r = sandbox.run(f"import io, sys, posix\nL = {FORGED_PASS!r}\n{route}\nposix._exit(0)\n")
    assert r.status != "passed", r


def test_openers_of_other_files_still_open(sandbox):
    """The opener check leaves openers alone that return any other descriptor: ``os.open``'s, a copy of stdout."""
    r = sandbox.run("import io, os\nwith open('f', 'w', opener=lambda p, fl: os.open(p, fl, 0o600)) as f:\n"
                    "    f.write('x')\nwith io.FileIO('f', 'a', opener=os.open) as f:\n    f.write(b'y')\n"
                    "out = open('-', 'w', opener=lambda p, fl: os.dup(1))\nout.write('z')\nout.close()", "open('f').read()")
    assert (r.status, r.stdout, r.return_repr) == ("passed", "z", "'xy'"), r


@pytest.mark.parametrize("call", ["io.FileIO()", "io.FileIO('f', 'w', buffering=0)", "io.FileIO('f', 'w', True, None, 0)",
                                  "io.FileIO('f', 'w', True, None, opener=None)"])
def test_a_fileio_call_it_refuses_raises_as_in_cpython(sandbox, call):
    """The opener check's ``FileIO.__init__`` hands its arguments on as given: a call ``FileIO`` refuses raises
    CPython's own message (traces record it), not one of the check's signature; ``FileIO`` stays unchanged here."""
    import io

    with pytest.raises(TypeError) as expected:
        eval(call, {"io": io})
    r = sandbox.run(f"import io\n{call}")
    assert (r.status, r.exc_type, r.exc_message) == ("error", "TypeError", str(expected.value)), r
    assert type(io.FileIO.__dict__["__init__"]).__name__ == "wrapper_descriptor"


def test_the_channel_guard_leaves_other_descriptors_alone(sandbox):
    """Copies of stdout are written, copied and closed as before."""
    r = sandbox.run("import os, posix\nopen('f', 'w').write('c')\nfd = os.dup(1)\nos.write(fd, b'a')\n"
                    "posix.writev(fd, [b'b'])\nos.dup2(fd, 5)\nos.sendfile(5, os.open('f', os.O_RDONLY), 0, 1)\n"
                    "os.close(fd)\nos.close(5)\nf = open(os.dup(1), 'w')\nf.write('d')\nf.close()", "1")
    assert (r.status, r.stdout, r.return_repr) == ("passed", "abcd", "1"), r


def test_other_processes_proc_entries_are_refused_however_spelled(sandbox):
    """The ``/proc`` rule normalised paths without resolving them: ``//proc/<pid>``, a relative
    ``../../../proc/<pid>`` or ``/dev/fd/../../<pid>`` read the parent's environment (API keys) and
    listed the fork server's descriptors. ``os.listdir()`` (the sandbox folder) was refused instead."""
    pid = os.getpid()
    spellings = [f"//proc/{pid}/environ", f"/dev/fd/../../{pid}/environ", f"../../../../../../proc/{pid}/environ",
                 f"/proc/thread-self/../../../{pid}/environ"]
    # From a /proc/<pid> entry, magic links lead outside /proc: a file only that process holds, its cwd, its root.
    held = tempfile.TemporaryFile()
    spellings += [f"/proc/{pid}/fd/{held.fileno()}", f"/proc/{pid}/cwd/{os.path.relpath(__file__)}",
                  f"/proc/{pid}/root/etc/hostname", f"/dev/fd/../../{pid}/root/etc/hostname"]
    programs = [f"open({p!r}).read()" for p in spellings] + [f"import os\nos.listdir('//proc/{pid}/fd')",
                                                              f"import os\nos.symlink('/proc/{pid}', 'l')\nopen('l/environ').read()"]
    with held:
        held.write(b"s3cret")
        held.flush()
        for src, r in zip(programs, sandbox.map(programs)):
            assert r.status == "error" and "sandbox:" in (r.exc_message or ""), (src, r)
    ok = sandbox.run("import os\nopen('f', 'w').close()\nnames = os.listdir() + [e.name for e in os.scandir()]\n"
                     "status = open('/proc/self/status').read()", "names")
    assert (ok.status, ok.return_repr) == ("passed", "['f', 'f']"), ok


def test_file_system_calls_by_path_or_descriptor_are_refused_outside_the_folder(sandbox, tmp_path):
    """``mkfifo``/``mknod`` raise no audit event, so they created fifos and files anywhere; ``chmod``,
    ``chown`` and ``utime`` were checked by path only, so a descriptor opened read-only outside the
    folder let them change that file; ``_posixshmem``/``_multiprocessing`` create files in /dev/shm. A fresh
    ``posix`` (re-imported, or built by ``_imp``) would bring the removed functions back. The calls that
    do raise an event (mkdir, symlink, link, rename, replace, utime, chmod by path) stay refused."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f.txt").write_text("precious\n")
    v, f = str(victim), str(victim / "f.txt")
    shm = f"semcoder-test-{os.getpid()}"
    read_fd = f"import os, posix\nfd = os.open({f!r}, os.O_RDONLY)\n"
    programs = {
        "mkfifo": f"import os\nos.mkfifo({v + '/fifo'!r})",
        "posix.mkfifo": f"import posix\nposix.mkfifo({v + '/fifo'!r})",
        "mknod fifo": f"import os, stat\nos.mknod({v + '/node'!r}, stat.S_IFIFO | 0o600)",
        "mknod file": f"import posix, stat\nposix.mknod({v + '/node'!r}, stat.S_IFREG | 0o600)",
        "mkdir": f"import os\nos.makedirs({v + '/d/e'!r})",
        "symlink": f"import posix\nposix.symlink('/etc/passwd', {v + '/l'!r})",
        "link": f"import posix\nposix.link({f!r}, {v + '/h'!r})",
        "link into the folder": f"import posix\nposix.link({f!r}, 'h')",
        "rename": f"import posix\nposix.rename({f!r}, {v + '/g'!r})",
        "replace": f"import posix\nposix.replace({f!r}, {v + '/g'!r})",
        "utime": f"import posix\nposix.utime({f!r}, (0, 0))",
        "chmod": f"import posix\nposix.chmod({f!r}, 0o777)",
        "fchmod": read_fd + "posix.fchmod(fd, 0o777)",
        "chmod by descriptor": read_fd + "posix.chmod(fd, 0o777)",
        "utime by descriptor": read_fd + "posix.utime(fd, (0, 0))",
        "fchown": read_fd + "posix.fchown(fd, 12345, 12345)",
        "shm_open": f"import _posixshmem, os\n_posixshmem.shm_open({'/' + shm!r}, os.O_CREAT | os.O_RDWR, 0o600)",
        "named semaphore": f"import _multiprocessing\n_multiprocessing.SemLock(1, 1, 1, {'/' + shm!r}, False)",
        "posix re-imported": f"import sys\ndel sys.modules['posix']\nimport posix\nposix.mkfifo({v + '/fifo'!r})",
        "posix rebuilt": "import _imp, importlib.machinery\nposix = _imp.create_builtin(importlib.machinery.ModuleSpec("
                         f"'posix', None))\nposix.mkfifo({v + '/fifo'!r})",
    }

    def state() -> list:
        return [(p.name, p.stat().st_mode, p.stat().st_uid, p.stat().st_mtime_ns) for p in sorted(victim.iterdir())]

    before = state()
    try:
        results = sandbox.map([Job(src) for src in programs.values()])
        for name, r in zip(programs, results):
            assert r.status == "error" and "sandbox:" in (r.exc_message or ""), (name, r)
        assert state() == before
        assert not list(Path("/dev/shm").glob(f"*{shm}*"))
    finally:
        for leaked in Path("/dev/shm").glob(f"*{shm}*"):
            leaked.unlink()
    inside = sandbox.run("import os\nos.mkfifo('p')\n", "1")  # the folder's own files: not by descriptor either
    assert "sandbox: mkfifo" in (inside.exc_message or ""), inside
    ok = sandbox.run("import os, posix\nfd = os.open('x', os.O_WRONLY | os.O_CREAT)\nposix.fchmod(fd, 0o600)\n"
                     "os.utime(fd)\nposix.chmod('x', 0o644)", "oct(os.stat('x').st_mode)")
    assert (ok.status, ok.return_repr) == ("passed", "'0o100644'"), ok


def test_other_processes_cannot_be_signalled_through_a_pidfd(sandbox):
    """``signal.pidfd_send_signal`` raises no audit event: a program killed any process of the same user. The
    fork server is one such process even in its PID namespace (where no host process is)."""
    r = sandbox.run("import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL)")
    assert r.status == "error" and "sandbox:" in (r.exc_message or ""), r
    assert sandbox.run("x = 1", "x + 1").return_repr == "2"


def test_a_coverage_job_forks_its_inputs_but_its_program_cannot_fork(sandbox):
    """Coverage runs each input in a process forked from the loaded program; the audit policy allows that
    fork only to coverage's own code in the job's process: not to the program (by hand, or by calling
    coverage's function), not in a run job, and an input's process cannot leave the job's process group,
    which the fork server kills."""
    slow_top = "import time, posix\ntime.sleep(0.02)\n"  # slow enough to be forked per input
    src = slow_top + "def f(what):\n    return posix.fork() if what == 'fork' else getattr(posix, what)()\n"
    entries = run_inputs(src, "f", ["'fork'", "'setsid'", "'setpgid'", "'getpid'"], sandbox=sandbox)
    assert [e["exc_type"] for e in entries] == ["PermissionError", "AttributeError", "AttributeError", None], entries
    top = run_inputs(slow_top + "posix.fork()\ndef f(x):\n    return x\n", "f", ["1"], sandbox=sandbox)
    assert top[0]["exc_type"] == "PermissionError", top
    through = "from semcoder_jax.execution import coverage\n" \
              "def f(x):\n    return coverage._in_fork({'g': print}, 'g', '', 1.0)\n"  # None: the fork was refused
    entries = run_inputs(slow_top + through, "f", ["0"], sandbox=sandbox)
    assert (entries[0]["ok"], entries[0]["return_repr"]) == (True, "None"), entries
    r = sandbox.run(through, "f(0)")
    assert (r.status, r.return_repr) == ("passed", "None"), r
    r = sandbox.run("import posix\nposix.fork()")
    assert r.status == "error" and "sandbox: os.fork" in (r.exc_message or ""), r


def test_the_host_file_system_is_read_only_however_the_policy_is_got_around(sandbox, tmp_path):
    """The audit policy is Python: a program that rebinds the guard's helpers (or walks the object graph to
    its hook) wrote files anywhere. Where the fork server has a mount namespace, every mount but the
    sandbox's own folders is read-only in it, so the kernel refuses such writes."""
    if not sandbox.host_read_only:
        pytest.skip("no private mount namespace here, or a kernel before 5.12 (no mount_setattr)")
    target = tmp_path / "pwned"
    bypass = "import sys\nsys.modules['semcoder_jax.execution.guard']._resolve = lambda path, root: root\n"
    programs = [bypass + f"open({str(target)!r}, 'w').write('x')",
                bypass + f"import posix\nposix.chmod({str(tmp_path)!r}, 0o777)"]
    for src, r in zip(programs, sandbox.map(programs)):
        assert r.status == "error" and "Read-only file system" in (r.exc_message or ""), (src, r)
    assert not target.exists() and tmp_path.stat().st_mode & 0o777 != 0o777
    ok = sandbox.run("open('x', 'w').write('fine')", "open('x').read()")
    assert (ok.status, ok.return_repr) == ("passed", "'fine'"), ok


def test_no_ctypes_function_of_the_fork_server_is_left_to_a_program(sandbox):
    """Calling a ctypes function raises no audit event, so a function the fork server had looked up was
    a way round the policy: ``_libc.syscall`` (cached by the read-only setup) made any system call
    (remount the host read-write, signal any process), and the raw ``fork`` forked without ``os.fork``."""
    syscall = sandbox.run("import sys\nsys.modules['__main__']._libc.syscall(39)")  # getpid on x86-64
    assert syscall.status == "error" and "sandbox: ctypes.dlsym" in (syscall.exc_message or ""), syscall
    walk = "import sys\nframe = sys._getframe()\nwhile type(frame.f_locals.get('self')).__name__ != 'ForkServer':\n" \
           "    frame = frame.f_back\npid = frame.f_locals['self'].fork()\nif pid == 0:\n    import posix\n    posix._exit(0)\n"
    fork = sandbox.run(walk)
    assert (fork.status, fork.exc_type) == ("error", "TypeError"), fork


def test_an_input_process_that_leaves_the_process_group_dies_with_its_job(sandbox, tmp_path):
    """Coverage forks each input of a slow top level; an input that calls a ``setsid`` the top level kept
    (``confine_forked`` removes it from the modules only) leaves the job's process group, which the fork
    server kills at the deadline: it outlived the job, sleeping for ever."""
    marker = tmp_path / "marker"
    marker.write_text("")
    src = "import posix, time\nkeep = posix.setsid\ntime.sleep(0.02)\n" \
          f"def f(x):\n    keep()\n    held = open({str(marker)!r})\n    time.sleep(60)\n"
    job = {"mode": "cover", "source": src, "func_name": "f", "inputs": ["0"], "per_input_timeout_s": 30.0, "timeout_s": 1.0}
    assert sandbox.map_raw([job])[0]["status"] == "timeout"

    deadline = time.monotonic() + 5
    while (left := _holders(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in left:
        p.kill()
    assert not left


def test_host_devices_stay_closed_however_the_policy_is_got_around(sandbox):
    """A read-only mount still lets a device node be opened for writing: a program that got around the
    audit policy opened /dev/ptmx, and as root the host's disks (/dev/vda) and /dev/kmsg. Only the
    harmless devices stay open to programs, /dev/stdin included."""
    if not sandbox.host_read_only:
        pytest.skip("no private mount namespace here, or a kernel before 5.12 (no mount_setattr)")
    bypass = "import sys\nsys.modules['semcoder_jax.execution.guard']._resolve = lambda path, root: root\nimport os\n"
    devices = [d for d in ("/dev/ptmx", "/dev/kmsg", "/dev/loop0") if os.path.exists(d)]
    for d, r in zip(devices, sandbox.map([bypass + f"os.close(os.open({d!r}, os.O_WRONLY))" for d in devices])):
        assert r.status == "error" and "Permission denied" in (r.exc_message or ""), (d, r)
    ok = sandbox.run("open('/dev/null', 'w').write('x')\nimport os\n"
                     "data = [open(d, 'rb').read(2) for d in ('/dev/zero', '/dev/full', '/dev/urandom', '/dev/random')]",
                     "[len(x) for x in data], open('/dev/stdin').read()")
    assert (ok.status, ok.return_repr) == ("passed", "([2, 2, 2, 2], '')"), ok


def test_other_processes_views_of_the_host_stay_closed_however_the_policy_is_got_around(sandbox, tmp_path):
    """Without a PID namespace another process's ``/proc/<pid>/root``, ``cwd`` and ``fd`` lead into its own
    mount namespace, where the host is writable: as root, a program that got around the audit policy's
    ``/proc`` check wrote files anywhere through them. Children now hold no capabilities."""
    bypass = "import sys\nguard = sys.modules['semcoder_jax.execution.guard']\nguard._resolve = lambda path, root: root\n" \
             "guard._other_process_entry = lambda path: False\n"
    victim = tmp_path / "victim"
    with open(victim, "w") as held:
        targets = [f"/proc/{os.getpid()}/root{tmp_path}/pwned", f"/proc/{os.getpid()}/fd/{held.fileno()}"]
        for target, r in zip(targets, sandbox.map([bypass + f"open({t!r}, 'w').write('x')" for t in targets])):
            # Not there at all where the fork server's PID namespace has its own /proc.
            assert r.status == "error" and r.exc_type in ("PermissionError", "FileNotFoundError"), (target, r)
    assert not (tmp_path / "pwned").exists() and victim.read_text() == ""


def _mount_point(path: Path) -> str:
    while not os.path.ismount(path):
        path = path.parent
    return str(path)


def test_the_kernel_layers_hold_with_the_audit_policy_switched_off(sandbox, tmp_path):
    """The audit hook is a Python closure that ``gc`` finds and whose cells a program can rewrite: with the
    policy off, ctypes remounted the host read-write in the fork server's namespace (children kept root's
    capabilities) and wrote anywhere. Without capabilities the remount is refused."""
    if not sandbox.host_read_only:
        pytest.skip("no private mount namespace here, or a kernel before 5.12 (no mount_setattr)")
    target = tmp_path / "pwned"
    src = POLICY_OFF + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" \
                f"remounted = libc.mount(None, {_mount_point(tmp_path).encode()!r}, None, 0x20 | 0x1000, None)\n" \
                f"open({str(target)!r}, 'w').write('x')"
    r = sandbox.run(src, "remounted")
    assert r.status == "error" and "Read-only file system" in (r.exc_message or ""), r
    assert not target.exists()


def _pid_isolated_sandbox() -> Sandbox:
    """A fresh sandbox (its namespace's pids start again from 1) whose fork server is PID 1 of a PID
    namespace; skips where the kernel refuses one, and fails where it allows one but the sandbox made none."""
    box = Sandbox(workers=1, memory_bytes=1 << 30)
    box.run("pass")
    if not box.pid_isolated:
        box.close()
        flags = "0x20000000" if os.geteuid() == 0 else "0x10000000) or libc.unshare(0x20000000"
        probe = f"import ctypes, sys\nlibc = ctypes.CDLL(None)\nsys.exit(bool(libc.unshare({flags})))"
        assert subprocess.run([sys.executable, "-c", probe]).returncode != 0, \
            "a PID namespace is possible here, but the sandbox made none"
        pytest.skip("the kernel refuses PID namespaces here")
    return box


def test_a_program_past_the_audit_policy_reaches_no_host_process():
    """Signals and pidfds to other processes were refused by the audit policy only: with it off, a program
    killed any process of the fork server's user (often root). In the server's PID namespace a host pid
    names no process, and the program's own pids are the namespace's."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        with _pid_isolated_sandbox() as box:
            src = POLICY_OFF + "import os, posix\ndef probe(call):\n    try:\n        call()\n        return 'reached'\n" \
                               "    except ProcessLookupError:\n        return 'no such process'\n"
            r = box.run(src, f"probe(lambda: posix.kill({victim.pid}, 9)), probe(lambda: os.pidfd_open({victim.pid})), "
                             "os.getppid(), os.getpid() < 10")
            assert (r.status, r.return_repr) == ("passed", "('no such process', 'no such process', 1, True)"), r
        time.sleep(0.1)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_program_lists_only_its_own_process():
    """``/proc`` was the host's: a program listed every host process, and in a PID namespace
    ``/proc/<os.getpid()>`` would be some host process's entry. The fork server mounts its namespace's own,
    with ``hidepid``: the server and the other jobs (which a program may not inspect) are not listed either."""
    with _pid_isolated_sandbox() as box:
        other = box.submit_raw({"mode": "run", "source": "import time\ntime.sleep(1)"})
        r = box.run("import os", "os.readlink('/proc/self') == str(os.getpid()), "
                                 "[int(e) for e in os.listdir('/proc') if e.isdigit()] == [os.getpid()], os.getpid() > 1")
        assert r.status == "passed", r
        if r.return_repr.startswith("(False"):
            pytest.skip("the kernel refuses a /proc of the sandbox's own here (a user namespace, host /proc covered)")
        assert r.return_repr == "(True, True, True)", r
        assert other.result(timeout=30)["status"] == "passed"


@pytest.mark.parametrize("stop", ["close", "kill"])
def test_no_process_of_a_sandbox_outlives_it(tmp_path, stop):
    """A program past the audit policy forked a process that left the job's session, which the fork
    server's kill never reached: it outlived the Sandbox, closed or killed. Every process of the PID
    namespace dies with the server, and the server with the process the Sandbox started."""
    import signal

    marker = tmp_path / "marker"
    marker.write_text("")
    src = POLICY_OFF + f"import posix, time\nr, w = posix.pipe()\nif posix.fork() == 0:\n    posix.setsid()\n" \
                       f"    held = open({str(marker)!r})\n    posix.write(w, b'.')\n    time.sleep(60)\n    posix._exit(0)\n" \
                       "posix.read(r, 1)\n"  # out of the job's process group before the job ends (and its group is killed)
    box = _pid_isolated_sandbox()
    try:
        outer = psutil.Process(box._proc.pid)
        assert box.run(src).status == "passed"
        deadline = time.monotonic() + 5
        while not _holders(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        escaped = _holders(marker)
        assert escaped, "the grandchild never started"
        server = outer.children(recursive=True)
        if stop == "kill":
            os.kill(outer.pid, signal.SIGKILL)
    finally:
        box.close()
    gone, alive = psutil.wait_procs([*escaped, *server, outer], timeout=5)
    for p in alive:
        p.kill()
    assert not alive


def test_a_program_reads_its_own_proc_entry_where_proc_stays_the_hosts():
    """Without a private mount namespace (``max_disk_bytes=0``) the PID namespace keeps the host's
    ``/proc``, where ``os.getpid()`` names another process: the policy refused the program's own entry
    (``/proc/self`` resolves to its host pid) and allowed that other process's."""
    with Sandbox(workers=1, max_disk_bytes=0) as box:
        r = box.run("", "open('/proc/self/status').read().startswith('Name:')")
        assert (r.status, r.return_repr) == ("passed", "True"), r
        other = box.run("import os", f"open('/proc/{os.getpid()}/environ').read()")
        assert other.status == "error" and "sandbox:" in (other.exc_message or ""), other


# Each a replaced public function the audit policy's path checks called when they ran (or a subclass's method they
# called on an argument), and what it let through: a write outside the job's folder (``V``: a folder beside it;
# ``posixpath.os`` is the real ``os``, the program's a copy) or a read of a host process's ``/proc`` entry (``P``).
WRITE = "open(V + '/pwned', 'w')"
DIR_FD = "fd = posix.open(V, posix.O_RDONLY)\nposix.open('pwned', posix.O_WRONLY | posix.O_CREAT, dir_fd=fd)"
READ = "open(f'/dev/fd/../../{P}/cmdline').read()"
BENT_PATH_ROUTES = {
    "posixpath.realpath": ("posixpath.realpath = lambda p, **k: ROOT + '/ok'", WRITE),
    "os.path.abspath": ("os.path.abspath = lambda p: ROOT + '/ok'", WRITE),
    "os.path.join": ("os.path.join = lambda *a: ROOT + '/ok'\nos.path.isabs = lambda p: False", WRITE),
    "os.getcwd": ("posixpath.isabs = lambda p: False\nposixpath.os.getcwd = lambda: ROOT", WRITE),
    "os.fspath": ("posixpath.os.fspath = lambda p: ROOT + '/ok'", WRITE),
    "stat.S_ISLNK, os.readlink": ("stat.S_ISLNK = lambda m: True\nposixpath.os.readlink = lambda p, **k: ROOT", WRITE),
    "genericpath's stat.S_ISDIR": ("stat.S_ISDIR = lambda m: False", DIR_FD),
    "genericpath's os.stat": ("def stat_(*a, **k):\n    raise OSError\nposixpath.os.stat = stat_", DIR_FD),
    "/proc, os.path.islink": ("os.path.islink = lambda p: False", READ),
    "/proc, stat.S_ISLNK": ("stat.S_ISLNK = lambda m: False", READ),
    "/proc, posixpath.realpath": ("posixpath.realpath = lambda p, **k: ROOT", READ),
    "/proc, os.fspath": ("posixpath.os.fspath = lambda p: ROOT", "open(f'/proc/{P}/cmdline').read()"),
    "/proc, os.path.dirname": ("os.path.dirname = lambda p: ROOT", "open(f'/proc/self/../{P}/cmdline').read()"),
    "a bytes subclass's decode": ("class B(bytes):\n    def decode(self, *a, **k):\n        return ROOT + '/ok'",
                                  "open(B((V + '/pwned').encode()), 'w')"),
    "builtins.PermissionError": ("import builtins\nbuiltins.PermissionError = type('Refused', (OSError,), {})", WRITE),
    "an int subclass's __format__": ("class I(int):\n    def __format__(self, spec):\n        return '1'",
                                     "posix.chmod(I(posix.open(V + '/f', posix.O_RDONLY)), 0o600)"),
}


@pytest.fixture(scope="module")
def undisked():
    """A sandbox without a folder of its own (``max_disk_bytes=0``): no mount namespace stands behind the policy."""
    with Sandbox(workers=1, max_disk_bytes=0, memory_bytes=1 << 30, timeout_s=10.0) as box:
        yield box


@pytest.mark.parametrize("route", BENT_PATH_ROUTES.values(), ids=BENT_PATH_ROUTES.keys())
def test_replacing_public_path_functions_bends_no_check(undisked, tmp_path, route):
    """The policy looked up ``os.path``/``posixpath``/``genericpath``/``os``/``stat`` functions when it ran: a program
    replacing one (``posixpath.realpath = lambda p: root + '/ok'``) wrote beside its folder, opened a folder outside
    it for a ``dir_fd``, or read a host process's ``/proc`` entry. Each is refused as without the replacement."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_text("")
    for p in (victim, victim / "f"):
        p.chmod(0o777)  # a job's own user may write here too: only the policy stands in the way
    head = f"import os, posix, posixpath, stat\nROOT, V, P = posix.getcwd(), {str(victim)!r}, {os.getpid()}\nB, I = bytes, int\n"
    patch, act = route
    plain, bent = undisked.map([head + act, f"{head}{patch}\n{act}"])
    assert plain.status == "error" and "sandbox:" in (plain.exc_message or ""), plain
    assert (bent.status, bent.exc_type, bent.exc_message) == (plain.status, plain.exc_type, plain.exc_message), bent
    assert [(p.name, p.stat().st_mode & 0o777) for p in victim.iterdir()] == [("f", 0o777)]


def test_a_replaced_path_like_check_bends_no_path_event(tmp_path, monkeypatch):
    """The policy checked only the arguments ``isinstance(a, os.PathLike)`` took for paths, which asks
    ``PathLike.__subclasshook__``: replaced, a ``shutil`` event's path object outside the folder went unchecked."""
    from semcoder_jax.execution import guard

    class Outside:
        def __fspath__(self) -> str:
            return str(tmp_path / "pwned")

    monkeypatch.setattr(os.PathLike, "__subclasshook__", classmethod(lambda cls, sub: False))
    assert not isinstance(Outside(), os.PathLike)
    hook = guard.make_audit_hook(str(tmp_path / "box"))
    with pytest.raises(PermissionError, match="shutil.copyfile on .* outside the sandbox folder"):
        hook("shutil.copyfile", ("f", Outside()))
    hook("shutil.copyfile", ("f", "g"))


def test_paths_relative_to_a_dir_fd_are_checked_from_its_folder(undisked, tmp_path):
    """The policy took a path given with ``dir_fd`` as relative to the sandbox folder: from a subfolder ``x`` holding a
    folder ``m``, ``m/../..`` climbs out, while from the folder, where ``m`` is a link to a deep folder, it stays
    in, so ``os.open``, ``unlink``, ``mkdir`` and ``rename`` with that ``dir_fd`` wrote beside the folder, opened a
    folder outside it and read other processes' ``/proc`` entries. A ``dir_fd`` inside the folder still works."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_text("precious\n")
    for p in (victim, victim / "f"):
        p.chmod(0o777)
    # From x/m, n '..' reach '/'; from the folder, where m is a link to a folder n deep, they come back to it.
    head = ("import os, posix\nn = posix.getcwd().count('/') + 2\nups, deep = '../' * n, '/'.join(['a'] * n)\n"
            "os.makedirs('x/m')\nos.makedirs(deep)\nos.symlink(deep, 'm')\nfd = os.open('x', os.O_RDONLY)\n"
            f"out = 'm/' + ups + {str(victim)[1:]!r}\n")
    programs = {
        "open": "os.open(out + '/marker', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        "unlink": "posix.unlink(out + '/f', dir_fd=fd)",
        "mkdir": "posix.mkdir(out + '/d', dir_fd=fd)",
        "rename": "open('g', 'w').close()\nposix.rename('g', out + '/g', dst_dir_fd=fd)",
        "folder": "os.open('m/' + ups + 'tmp', os.O_RDONLY, dir_fd=fd)",
        "proc": f"os.open('m/' + ups + 'proc/{os.getpid()}/environ', os.O_RDONLY, dir_fd=fd)",
    }
    for (name, act), r in zip(programs.items(), undisked.map([head + act for act in programs.values()])):
        assert r.status == "error" and "sandbox:" in (r.exc_message or ""), (name, r)
    assert sorted(p.name for p in victim.iterdir()) == ["f"]
    ok = undisked.run("import os, posix\nos.makedirs('d/e')\nfd = os.open('d', os.O_RDONLY)\n"
                      "os.close(os.open('e/x', os.O_WRONLY | os.O_CREAT, dir_fd=fd))\nos.mkdir('y', dir_fd=fd)\n"
                      "posix.unlink('e/x', dir_fd=fd)", "sorted(os.listdir('d'))")
    assert (ok.status, ok.return_repr) == ("passed", "['e', 'y']"), ok


def _require_ids_isolated(box: Sandbox) -> None:
    """Skip where jobs cannot have ids of their own (not root of the initial user namespace); fail where
    they could but the sandbox gave them none."""
    if box.ids_isolated:
        return
    with open("/proc/self/uid_map") as f:
        full_map = f.read().split() == ["0", "0", "4294967295"]
    assert not (os.geteuid() == 0 and full_map), "jobs could run under ids of their own here, but the sandbox gave them none"
    pytest.skip("jobs cannot run under ids of their own here (not root of the initial user namespace)")


# Every way a program past the policy tried to reach the other jobs: a signal (0: only whether it is allowed), a
# pidfd signal, another job's result channel, the other jobs' folders (numbered as made: those near its own).
REACH_OTHER_JOBS = POLICY_OFF + """\
sys.modules['semcoder_jax.execution.guard']._other_process_entry = lambda path: False
import posix, signal
me, seen = posix.getpid(), set()
def attempt(what, act):
    try:
        act()
        seen.add(what + ' done')
    except OSError as e:
        seen.add(what + ' ' + type(e).__name__)
for pid in range(1, 64):
    if pid != me:
        attempt('probe', lambda: posix.kill(pid, 0))
        attempt('kill', lambda: posix.kill(pid, signal.SIGKILL))
        attempt('pidfd', lambda: signal.pidfd_send_signal(posix.pidfd_open(pid), signal.SIGKILL))
        attempt('forge', lambda: posix.write(posix.open(f'/proc/{pid}/fd/99', posix.O_WRONLY), b'{}\\n'))
parent, own = posix.getcwd().rsplit('/', 1)
for name in map(str, range(max(1, int(own) - 64), int(own) + 64)):  # folders are numbered as the server makes them
    if name != own:
        attempt('folder', lambda: posix.listdir(parent + '/' + name))
        attempt('folder write', lambda: open(parent + '/' + name + '/mine', 'w').write('pwned'))
"""


def test_a_program_past_the_audit_policy_reaches_no_other_job(sandbox):
    """Jobs ran as the same user (root, without capabilities): with the policy off a program killed the jobs
    running beside it, signalled the fork server (outside a PID namespace), opened another job's
    ``/proc/<pid>/fd/99`` (its result channel), and read or rewrote the files in the other jobs' folders,
    so a completion could pass or fail the others scored beside it. Each job now has a user and group id of
    its own (its folder its group's alone), is not dumpable, and ``/proc`` hides what it may not inspect."""
    _require_ids_isolated(sandbox)
    server = sandbox._proc.pid
    victim = sandbox.submit_raw({"mode": "run", "source": "import time\nopen('mine', 'w').write('own')\n"
                                 "time.sleep(1.5)\nx = open('mine').read()", "call": "x"})
    time.sleep(0.5)
    attacker = sandbox.run(REACH_OTHER_JOBS, "sorted(seen)")
    assert attacker.status == "passed", attacker
    seen = eval(attacker.return_repr)
    assert not [s for s in seen if s.endswith(" done")], seen
    assert {"probe PermissionError", "kill PermissionError", "pidfd PermissionError", "folder PermissionError"} <= set(seen), seen
    assert (victim.result(timeout=30)["status"], victim.result()["return_repr"]) == ("passed", "'own'")
    assert sandbox._proc.pid == server and sandbox.run("x = 1", "x + 1").return_repr == "2"


def test_a_program_past_the_audit_policy_exhausts_only_its_own_process_limit():
    """``RLIMIT_NPROC`` counts a user's processes and binds no root process: with the policy off, a fork bomb
    in a job that ran as root was bounded by nothing but memory. A job's own user now holds at most
    ``max_processes``, and the next job starts."""
    with Sandbox(workers=2, memory_bytes=1 << 30, max_processes=16, timeout_s=5) as box:
        _require_ids_isolated(box)
        bomb = POLICY_OFF + "import posix, time\nn = 0\ntry:\n    while True:\n        if posix.fork() == 0:\n" \
                            "            time.sleep(30)\n            posix._exit(0)\n        n += 1\nexcept OSError as e:\n" \
                            "    err = type(e).__name__\n"
        r = box.run(bomb, "n, err")
        assert (r.status, r.return_repr) == ("passed", "(15, 'BlockingIOError')"), r
        assert box.run("x = 1", "x + 1").return_repr == "2"


def test_a_program_past_the_audit_policy_writes_nothing_beside_its_folder(sandbox):
    """The fork server's folder, which holds every job's tmpfs, lies on the host's disk and was writable to
    its jobs (same user): with the policy off a program wrote any number of files there, past its tmpfs's
    size, and listed the other jobs' folders."""
    if not sandbox.host_read_only:
        pytest.skip("no private mount namespace here, or a kernel before 5.12 (no mount_setattr)")
    src = POLICY_OFF + "import posix, tempfile\nparent, tried = tempfile.gettempdir().rsplit('/', 1)[0], []\n" \
        "for act in (lambda: open(parent + '/escaped', 'w'), lambda: posix.mkdir(parent + '/d'), " \
        "lambda: posix.listdir(parent)):\n    try:\n        act()\n        tried.append('done')\n" \
        "    except OSError as e:\n        tried.append(type(e).__name__)\n"
    r = sandbox.run(src, "tried")
    assert (r.status, r.return_repr) == ("passed", "['PermissionError', 'PermissionError', 'PermissionError']"), r
    ok = sandbox.run("import tempfile\nf = tempfile.NamedTemporaryFile('w')\nf.write('x')\nf.flush()", "open(f.name).read()")
    assert (ok.status, ok.return_repr) == ("passed", "'x'"), ok


# (name, job, status, exc_type or return_repr): the harness's own work after a program (describing its
# exception, repr of the call's value, encoding and writing the result) meets the program's tricks.
HARNESS_TRICKS = [
    ("sys.exit in atexit", Job("import atexit, sys\natexit.register(sys.exit, 3)\natexit.register(print, 'late')", "'ran'"),
     "passed", "'ran'"),
    ("BaseException subclass", Job("class Stop(BaseException):\n    pass\nraise Stop('x')"), "error", "Stop"),
    ("KeyboardInterrupt", Job("raise KeyboardInterrupt"), "error", "KeyboardInterrupt"),
    ("a __name__ that raises", Job("class M(type):\n    @property\n    def __name__(cls):\n        raise SystemExit('no')\n"
                                   "class E(Exception, metaclass=M):\n    pass\nraise E()"), "error", "E"),
    ("a __class__ that raises", Job("class E(Exception):\n    @property\n    def __class__(self):\n        raise SystemExit('no')\n"
                                    "raise E()"), "error", "E"),
    ("an assertion in disguise", Job("class E(AssertionError):\n    __class__ = KeyError\nraise E()"), "failed", "E"),
    ("builtins and json replaced", Job("import builtins, json, sys\nbuiltins.str = builtins.repr = builtins.type = None\n"
                                       "builtins.isinstance = builtins.print = None\njson.dumps = json.loads = None\n"
                                       "class Out:\n    def write(self, s):\n        raise KeyboardInterrupt\n"
                                       "    def flush(self):\n        raise SystemExit\nsys.stdout = sys.stderr = Out()", "6 * 7"),
     "passed", "42"),
    ("a __repr__ that exits", Job("class R:\n    def __repr__(self):\n        raise SystemExit(1)\n", "R()"), "error", "SystemExit"),
    ("the json encoder broken", Job("import json.encoder\njson.encoder.c_make_encoder = None\n"
                                    "json.encoder.encode_basestring_ascii = None", "'x'"), "passed", "'x'"),  # not the report's
    ("SIGTERM ignored while asleep", Job("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)",
                                         timeout_s=0.5), "timeout", None),
    ("a thread printing for ever", Job("import threading, time\ndef spam():\n    while True:\n        print('x')\n"
                                       "        time.sleep(0.001)\nthreading.Thread(target=spam).start()", "'done'"),
     "passed", "'done'"),
    ("the result channel replaced", Job("import posix\nposix.dup2(posix.open('/dev/null', posix.O_WRONLY), 99)", "1"),
     "error", "OSError"),
    ("the result channel closed", Job("import posix\nposix.close(99)", "1"), "error", "OSError"),
    ("huge stdout", Job("import sys\nsys.stdout.write('x' * (4 << 20))", "1"), "output_limit", None),
]


def test_harness_tricks_are_contained_classified_and_counted(sandbox):
    """A program that replaced what the report uses (``isinstance``, ``json``) or whose exception class ran
    code when named (a metaclass ``__name__``, a ``__class__`` property) made the child die mid-report:
    ``exited with code 4``, whatever the program did. Every trick gets its own verdict, one result per job,
    and the fork server serves the next job."""
    pid = sandbox._proc.pid
    results = sandbox.map([job for _, job, _, _ in HARNESS_TRICKS])
    assert len(results) == len(HARNESS_TRICKS)
    for (name, _, status, detail), r in zip(HARNESS_TRICKS, results):
        assert r.status == status, (name, r)
        if detail is not None:
            assert detail in (r.return_repr if status == "passed" else r.exc_type), (name, r)
    assert len(results[-1].stdout) == sandbox.config.max_output_bytes
    assert sandbox._proc.pid == pid and sandbox.run("x = 1", "x + 1").return_repr == "2"


def test_a_memory_hungry_program_under_coverage_is_a_memory_failure(sandbox):
    """Coverage forks each input of a slow top level from the loaded program, so the input's process starts
    with the program's memory under the job's memory limit: an input past it fails with ``MemoryError``
    and the next input runs; a top level past it fails every input. An input's process that a SIGKILL it did
    not get from coverage ended (the kernel's OOM killer) fails as ``memory``, not ``crashed``. None of it
    reaches the fork server."""
    pid = sandbox._proc.pid
    held = "import time\ntime.sleep(0.02)\nheld = bytes(600 << 20)\n"  # forked per input, 600 MiB of 1 GiB held (calloc: untouched)
    entries = run_inputs(held + "def f(n):\n    return len(bytes(n))\n", "f", [str(200 << 20), str(500 << 20), "1"],
                         sandbox=sandbox)
    assert [(e["ok"], e["exc_type"]) for e in entries] == [(True, None), (False, "MemoryError"), (True, None)], entries
    top = run_inputs("held = bytearray(2 << 30)\ndef f(n):\n    return n\n", "f", ["1", "2"], sandbox=sandbox)
    assert [e["exc_type"] for e in top] == ["MemoryError", "MemoryError"], top
    oom = POLICY_OFF + "import time\ntime.sleep(0.02)\ndef f(n):\n    import posix\n    if n:\n" \
                       "        posix.kill(posix.getpid(), 9)\n    return n\n"
    killed = run_inputs(oom, "f", ["1", "0"], sandbox=sandbox)
    assert [(e["ok"], e["exc_type"]) for e in killed] == [(False, "memory"), (True, None)], killed
    assert sandbox._proc.pid == pid and sandbox.run("x = 1", "x + 1").return_repr == "2"


def test_jobs_of_two_fork_servers_running_at_once_have_ids_of_their_own():
    """The determinism check's sibling (another hash seed) runs jobs beside the main sandbox's in the data
    build's threads, and Beam workers have a sandbox each: every fork server numbered its jobs' ids from the
    same base, so their first jobs shared a user and group id (one process limit, each other's plain folders)."""
    job = {"mode": "run", "source": "import os, time\ntime.sleep(0.5)\nx = (os.getuid(), os.getgid())", "call": "x"}
    with Sandbox(workers=2) as a, Sandbox(workers=2) as b:
        _require_ids_isolated(a)
        pending = [a.submit_raw(job), b.submit_raw(job), a.submit_raw(job), b.submit_raw(job)]
        results = [f.result(timeout=30) for f in pending]
    assert all(r["status"] == "passed" for r in results), results
    ids = [eval(r["return_repr"]) for r in results]
    assert len({uid for uid, _ in ids}) == len(ids) and all(uid == gid for uid, gid in ids), ids


def test_after_its_block_wraps_a_server_skips_the_ids_its_running_jobs_hold():
    import types

    from semcoder_jax.execution import forkserver

    first, count = forkserver.job_id_block(4321)
    assert first >= forkserver.JOB_IDS_BASE and count >= 512
    assert first + count <= forkserver.job_id_block(4322)[0] and forkserver.job_id_block(4322)[0] + count <= forkserver.JOB_IDS_END
    server = forkserver.ForkServer.__new__(forkserver.ForkServer)
    server.ids_isolated, server.ids_first, server.ids_count, server.jobs_started = True, 100, 3, 0
    server.running = {7: types.SimpleNamespace(ident=101)}  # a slow job still holds 101
    assert [server.next_ident() for _ in range(4)] == [100, 102, 100, 102]
    server.ids_isolated = False
    assert server.next_ident() is None


def test_an_unknown_type_layout_leaves_the_opener_route_open_with_a_warning(monkeypatch):
    """A CPython whose type flags are elsewhere still runs programs: the one guard that needs them warns."""
    from semcoder_jax.execution import guard

    def refuse(cls, name, value):
        raise RuntimeError(f"sandbox: cannot find the type flags of {cls.__qualname__} in this Python build")

    monkeypatch.setattr(guard, "_OPENERS_CHECKED", False)
    monkeypatch.setattr(guard, "_set_type_attribute", refuse)
    with pytest.warns(RuntimeWarning, match="opener=.*result channel"):
        guard._check_openers(99)
    assert guard._OPENERS_CHECKED
