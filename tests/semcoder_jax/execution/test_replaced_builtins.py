"""A traced or covered program that replaces what the tracer or coverage calls once its own code has run
(builtins, ``sys.settrace``, ``ast``, ``json``, ``os``, ``select``...) gets the trace and coverage it would have
got without: the harness binds those at import, as the child does for its report."""

import pytest

from semcoder_jax.execution import run_inputs, trace_call

# Each call event, line, loop, exception (caught) and a repr that fails: every path of the trace function.
TRACED = """class R:
    def __repr__(self):
        raise ValueError('no repr')

def f(nums, k):
    r = R()
    total = 0
    for x in nums:
        try:
            total += x // (x - k)
        except ZeroDivisionError:
            total -= 1
    return total
"""
TRACED_CALL = "f([1, 3, 5], 3)"
_FAKE_TRACER = """import builtins, types
class Fake:
    def __init__(self, *a, **k):
        pass
    def run(self, code, env):
        return 99
    def result(self):
        return {'events': [], 'loop_counts': {}, 'truncated': False, 'stopped': False}
fake = types.SimpleNamespace(tracer=types.SimpleNamespace(Collector=Fake))
real = builtins.__import__
builtins.__import__ = lambda name, *a, **k: fake if name == 'semcoder_jax.execution' else real(name, *a, **k)
"""
# Each appended to ``TRACED``'s top level: what the tracer's hooks, its ``run`` and its ``Collector`` called.
TRACE_TRICKS = {
    "builtins.eval": "import builtins\nbuiltins.eval = lambda *a: 99",
    "builtins.repr": "import builtins\nbuiltins.repr = lambda v: 'x'",
    "builtins.str": "import builtins\nbuiltins.str = lambda *a: 'x'",
    "builtins.len": "import builtins\nbuiltins.len = lambda v: 1 << 40",
    "builtins.sum": "import builtins\nbuiltins.sum = lambda *a: 1 << 40",
    "builtins.isinstance": "import builtins\nbuiltins.isinstance = lambda *a: False",
    "builtins.type": "import builtins\nbuiltins.type = None",
    "builtins.dict": "import builtins\nbuiltins.dict = lambda *a: {}",
    "builtins.BaseException": "import builtins\nbuiltins.BaseException = KeyError",
    "builtins.sorted": "import builtins\nbuiltins.sorted = lambda *a, **k: []",
    "builtins.max": "import builtins\nbuiltins.max = lambda *a: 0",
    "builtins.compile": "import builtins\nc = builtins.compile\nbuiltins.compile = lambda s, *a, **k: c('', *a, **k)",
    "builtins.__import__": _FAKE_TRACER,
    "ast.parse": "import ast\nast.parse = lambda *a, **k: ast.Module(body=[], type_ignores=[])",
    "ast.walk": "import ast\nast.walk = lambda node: iter(())",
    "sys.settrace": "import sys\nsys.settrace = lambda f: None",
    "sys.gettrace": "import sys\nsys.gettrace = lambda: None",
    "sys.getrecursionlimit": "import sys\nsys.getrecursionlimit = lambda: -100",
    "sys.setrecursionlimit": "import sys\nsys.setrecursionlimit = None",
}


def _seen(t) -> tuple:
    return t.status, t.return_repr, t.exception, t.events, t.loop_counts, t.truncated, t.stopped


@pytest.fixture(scope="module")
def honest_trace(sandbox):
    t = trace_call(TRACED, TRACED_CALL, sandbox=sandbox)
    assert (t.status, t.return_repr, t.loop_counts) == ("passed", "0", {8: 3}), t
    assert "<repr failed: ValueError>" in t.events[1]["locals"].values() and any(e["kind"] == "exception" for e in t.events)
    return t


@pytest.mark.parametrize("patch", TRACE_TRICKS.values(), ids=TRACE_TRICKS.keys())
def test_a_traced_program_cannot_change_its_trace_by_replacing_what_the_tracer_calls(sandbox, honest_trace, patch):
    """The tracer looked these up when it ran, after the program's top level: a fake ``eval`` was the traced call
    (no events, its own return value), a fake ``repr`` every local, ``len`` or ``sum`` truncated the trace at once,
    ``ast``'s functions emptied the loop counts, ``type`` or ``BaseException`` made the trace function raise
    into the program."""
    t = trace_call(TRACED + patch + "\n", TRACED_CALL, sandbox=sandbox)
    assert _seen(t) == _seen(honest_trace)


def test_an_exception_class_whose_name_raises_is_traced(sandbox):
    """The trace function named an exception by ``__name__``, which a metaclass may define: its ``SystemExit``
    left the trace function and replaced the exception the program caught."""
    src = ("class M(type):\n    @property\n    def __name__(cls):\n        raise SystemExit('no')\n\n"
           "class E(Exception, metaclass=M):\n    pass\n\n"
           "def f():\n    try:\n        raise E()\n    except E:\n        x = 1\n    return x\n")
    t = trace_call(src, "f()", sandbox=sandbox)
    assert (t.status, t.return_repr, t.stopped) == ("passed", "1", False), t
    assert [e["type"] for e in t.events if e["kind"] == "exception"] == ["E"]


COVERED = "def f(x):\n    if x > 0:\n        return 'pos'\n    return 'neg'\n"
COVERED_INPUTS = ["1", "-1", "'a'"]
# A top level this slow runs once, each input in a process of its own (``coverage.FORK_ABOVE_S``).
_SLOW = "import time\ntime.sleep(0.02)\n"
# Each appended to ``COVERED``'s top level: what ``run_batch``, ``_call``, ``_load`` and ``_in_fork`` called.
COVER_TRICKS = {
    "builtins.eval": "import builtins\nbuiltins.eval = lambda *a: ((5,), {})",
    "builtins.compile": "import builtins\nc = builtins.compile\n"
                        "builtins.compile = lambda s, f, m: c('(lambda *a, **k: (a, k))(5)', f, m)",
    "builtins.exec": "import builtins\nbuiltins.exec = lambda *a: None",
    "builtins.repr": "import builtins\nbuiltins.repr = lambda v: 'x'",
    "builtins.sorted": "import builtins\nbuiltins.sorted = lambda s: []",
    "builtins.type": "import builtins\nbuiltins.type = None",
    "builtins.enumerate": "import builtins\nbuiltins.enumerate = lambda s: [(0, '5')] * 3",
    "sys.settrace": "import sys\nsys.settrace = lambda f: None",
    "contextlib.redirect_stdout": "import contextlib\ncontextlib.redirect_stdout = None",
    "io.StringIO": "import io\nio.StringIO = None",
    "json.loads, forked": _SLOW + "import json\nloads = json.loads\njson.loads = lambda d: {**loads(d), 'lines': [1]}",
    "os.read, forked": _SLOW + "import posixpath\nread = posixpath.os.read\n"
                                "posixpath.os.read = lambda fd, n: read(fd, n).replace(b'\"lines\": [2, 3]', b'\"lines\": [1]')",
    "select.select, forked": _SLOW + "import select\nselect.select = lambda *a: ([], [], [])",
    "builtins.len, forked": _SLOW + "import builtins\nbuiltins.len = lambda s: 1 << 40",
    "builtins.isinstance, forked": _SLOW + "import builtins\nbuiltins.isinstance = lambda *a: False",
    "builtins.bytearray, forked": _SLOW + "import builtins\nbuiltins.bytearray = lambda: [b'{}']",
}


@pytest.fixture(scope="module")
def honest_coverage(sandbox):
    entries = run_inputs(COVERED, "f", COVERED_INPUTS, sandbox=sandbox)
    assert [(e["ok"], e["exc_type"], e["lines"]) for e in entries] == [(True, None, [2, 3]), (True, None, [2, 4]),
                                                                      (False, "TypeError", [2])], entries
    assert run_inputs(COVERED + _SLOW, "f", COVERED_INPUTS, sandbox=sandbox) == entries  # forked, the same
    return entries


@pytest.mark.parametrize("patch", COVER_TRICKS.values(), ids=COVER_TRICKS.keys())
def test_a_covered_program_cannot_change_its_coverage_by_replacing_what_coverage_calls(sandbox, honest_coverage, patch):
    """Coverage looked these up after the program's top level had run: a fake ``eval`` or ``enumerate`` chose the
    inputs, ``exec`` the program run for later inputs, ``sys.settrace`` or ``sorted`` the lines, and in a forked
    input's parent ``json.loads``, ``os.read`` or ``select.select`` the entry it read back."""
    assert run_inputs(COVERED + patch + "\n", "f", COVERED_INPUTS, sandbox=sandbox) == honest_coverage


# Reads the clock, an unseeded ``random.Random``, a file and ``id`` when called, after the top level.
AUDITED = ("import random, time\ndef f():\n    open('f', 'w').close()\n"
           "    return time.time() > 0, random.Random().random() < 2, open('f').read(), id(f) > 0\n")
_FROZEN_FRAME = "types.SimpleNamespace(f_code=types.SimpleNamespace(co_filename='<frozen importlib._bootstrap>'), f_back=None)"
# Each appended to ``AUDITED``'s top level: what the determinism audit's wrappers and audit hook called.
AUDIT_TRICKS = {
    "builtins.len": "import builtins\nbuiltins.len = lambda x: 100",
    "sys._getframe": f"import sys, types\nframe = {_FROZEN_FRAME}\nsys._getframe = lambda *a: frame",
    "builtins.type": "import builtins, random\nreal = builtins.type\n"
                     "builtins.type = lambda *a: random.SystemRandom if real(*a) is random.Random else real(*a)",
    "random.SystemRandom": "import random\nrandom.SystemRandom = random.Random",
    "builtins.isinstance": "import builtins\nreal = builtins.isinstance\nbuiltins.isinstance = lambda x, t: t is int or real(x, t)",
    "os.path.realpath": "import posixpath\nreal = posixpath.realpath\n"
                        "posixpath.realpath = lambda p, **k: '/x.py' if p == 'f' else real(p, **k)",
    "posixpath.normpath": "import posixpath\nreal = posixpath.normpath\n"
                          "posixpath.normpath = lambda p: real(p) + ('.py' if p.endswith('/f') else '')",
}


def _reasons(sandbox, source: str) -> list:
    r = sandbox.run_raw({"mode": "audit", "source": source, "call": "f()"})
    assert (r["status"], r["return_repr"]) == ("passed", "(True, True, '', True)"), r
    return r["payload"]["reasons"]


@pytest.mark.parametrize("patch", AUDIT_TRICKS.values(), ids=AUDIT_TRICKS.keys())
def test_a_program_cannot_hide_what_the_determinism_audit_records(sandbox, patch):
    """The audit's wrappers and hook looked these up as the program ran: a ``len`` answering 100 (the log full), a
    ``sys._getframe`` showing importlib's frames (an import, not the program), a ``type`` or ``SystemRandom`` making
    every ``Random`` the system's, an ``isinstance``, ``realpath`` or ``normpath`` (which ``realpath`` calls) making a
    file a library's kept reasons out."""
    honest = _reasons(sandbox, AUDITED)
    assert [r.split(" (")[0] for r in honest] == ["opens files", "reads the clock", "uses randomness",
                                                  "depends on object identity"], honest
    assert _reasons(sandbox, AUDITED + patch + "\n") == honest


_NODE = "class N:\n    def __init__(self, v):\n        self.v = v\n"
# Each appended to ``_NODE``'s top level: what ``number_identity_hashes`` calls after it.
IDENTITY_TRICKS = {
    "builtins.isinstance": "import builtins\nbuiltins.isinstance = lambda *a: False",
    "builtins.type": "import builtins\nbuiltins.type = lambda *a: N",
    "builtins.object": "import builtins\nclass O:\n    __hash__ = None\nbuiltins.object = O",
    "gc.get_objects": "import gc\ngc.get_objects = lambda: [N(0)]",
}


@pytest.mark.parametrize("patch", [""] + list(IDENTITY_TRICKS.values()), ids=["honest"] + list(IDENTITY_TRICKS))
def test_a_program_cannot_keep_its_classes_from_hashing_by_number(sandbox, patch):
    """After the top level, a class without instances hashes its instances by number (the first hashed: 1), so
    two traces, numbered one way and the other, show a set of them in two orders. Made to look instantiated (a fake
    ``type`` or ``gc.get_objects``) or not a class (``isinstance``, ``object``), it hashed by address in both."""
    r = sandbox.run_raw({"mode": "run", "source": _NODE + patch + "\n", "call": "hash(N(0))", "identity_hash": "numbered"})
    assert (r["status"], r["return_repr"]) == ("passed", "1"), r
