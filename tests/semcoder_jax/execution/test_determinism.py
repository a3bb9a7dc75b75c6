import pytest

from semcoder_jax.execution import check_determinism, check_determinism_many


@pytest.mark.parametrize(
    "source, reason",
    [
        ("def f(x):\n    return sorted(x)\n", None),
        ("import random\nrandom.seed(7)\ndef f(x):\n    return random.randint(0, x)\n", None),
        ("import datetime\ndef f(x):\n    return datetime.date(2020, 1, x).isoformat()\n", None),
        ("import time\ndef f(x):\n    return time.time() > x\n", "clock"),
        ("import datetime\ndef f(x):\n    return datetime.datetime.now().year > x\n", "clock"),
        ("import random\ndef f(x):\n    return random.random() < x\n", "randomness"),
        ("import os\ndef f(x):\n    return os.environ.get('HOME', x)\n", "environment"),
        ("def f(x):\n    return open('/etc/hostname').read()[:x]\n", "files"),
        ("import socket\ndef f(x):\n    return socket.gethostname()[:x]\n", "network"),
        ("def f(x):\n    return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'})[:x]\n", "hash seeds"),
        ("def f(x):\n    return id(x) > 0\n", "identity"),
        ("def f(x):\n    return sorted([[x], [x]], key=id)[0] == [x]\n", "identity"),
        # Libraries that use id() for bookkeeping only: the program does not depend on identity.
        ("import copy\ndef f(x):\n    return copy.deepcopy([x, [x]])\n", None),
        # Importing lists package folders and lets modules read the environment or clock as they load.
        ("import html, logging, optparse, xml.etree.ElementTree\ndef f(x):\n    return html.escape('<' * x)\n", None),
        ("import time\nSTART = time.time()\ndef f(x):\n    return x\n", "clock"),
        ("import dataclasses, pprint\n@dataclasses.dataclass\nclass P:\n    a: int\n"
         "def f(x):\n    return pprint.pformat([P(x)])\n", None),
        # time.strftime(format) formats the current time; its time argument is the second one.
        ("import time\ndef f(x):\n    return time.strftime('%Y')[:x]\n", "clock"),
        ("import time\ndef f(x):\n    return time.strftime('%Y', time.gmtime(x))\n", None),
        # The message is part of the data ("[EXCEPTION] ValueError: ..."); addresses in it are masked there.
        ("def f(x):\n    raise ValueError(str({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'}))\n", "hash seeds"),
        ("def f(x):\n    raise ValueError(object())\n", None),
    ],
)
def test_determinism_filter(sandbox, source, reason):
    report = check_determinism(source, "f(3)", sandbox=sandbox)
    if reason is None:
        assert report.deterministic and report.reasons == []
    else:
        assert not report.deterministic
        assert any(reason in r for r in report.reasons), report.reasons


def test_batch_keeps_order(sandbox):
    reports = check_determinism_many([("def f():\n    return 1\n", "f()"),
                                      ("import time\ndef f():\n    return time.time()\n", "f()")], sandbox=sandbox)
    assert [r.deterministic for r in reports] == [True, False]


_NODE = "class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"


@pytest.mark.parametrize(
    "source, deterministic",
    [
        # A set of objects hashed by identity prints (and iterates) in the order of their addresses, which
        # differ from run to run within one hash seed: the result is stable, the trace (and monologue) not.
        (_NODE + "def f(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n", False),
        (_NODE + "def f(xs):\n    return sum(n.v * i for i, n in enumerate({N(x) for x in xs}))\n", False),
        # Hashed by value: the same order on every run.
        (_NODE + "    def __hash__(self):\n        return self.v\n    def __eq__(self, o):\n        return self.v == o.v\n"
         "def f(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n", True),
        # Hashed by their fields (dataclass adds __hash__ after the class is made).
        ("import dataclasses\n@dataclasses.dataclass(frozen=True)\nclass P:\n    v: int\n"
         + "def f(xs):\n    s = {P(x) for x in xs}\n    return len(s)\n", True),
        (_NODE.replace("class N:", "import dataclasses\n@dataclasses.dataclass(eq=False)\nclass N:")
         + "def f(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n", False),
        # Identity-hashed objects as dict keys: insertion order.
        (_NODE + "def f(xs):\n    d = {N(x): x for x in xs}\n    return sum(d.values())\n", True),
        ("def f(xs):\n    s = set(map(str, xs))\n    return len(s)\n", True),  # ordered by the hash seed: fixed
    ],
)
def test_a_trace_ordered_by_object_identity_is_nondeterministic(sandbox, source, deterministic):
    """The filter compared results only: ``len`` of a set of identity-hashed objects passed, and the
    trace that monologues are written from listed the set in another order on every build."""
    report = check_determinism(source, "f([0, 7, 3, 5])", sandbox=sandbox)
    assert report.deterministic is deterministic, report.reasons
    if not deterministic:
        assert any(r.startswith("trace of f([0, 7, 3, 5]) differs") for r in report.reasons), report.reasons


def test_an_erroring_call_is_compared_untraced(sandbox):
    """The tracer's own frames reach the recursion limit first, with another message: a call that fails
    either way is not "different between hash seeds"."""
    report = check_determinism("def r(n):\n    return r(n + 1)\n", "r(0)", sandbox=sandbox)
    assert report.deterministic, report.reasons


@pytest.mark.parametrize(
    "source",
    [
        # Instances hashed by the top level: renumbering their class afterwards lost them from the set/dict.
        "class N:\n    pass\nA = N()\nSEEN = {A}\ndef f(x):\n    return (A in SEEN) + x\n",
        "class N:\n    pass\nA = N()\nG = {A: 5}\ndef f(x):\n    return G.get(A, 0) + x\n",
        # A class made during the call got its hash before its decorator ran: dataclass then neither added
        # the fields' hash (two equal instances, two set members) nor made instances unhashable.
        "import dataclasses\ndef f(x):\n    @dataclasses.dataclass(frozen=True)\n    class P:\n        v: int\n"
        "    return len({P(x), P(x)})\n",
        "import dataclasses\ndef f(x):\n    @dataclasses.dataclass\n    class P:\n        v: int\n    try:\n"
        "        return len({P(x)})\n    except TypeError:\n        return -1\n",
        # Instances without weak references were kept alive: their __del__ never printed.
        "class P:\n    __slots__ = ('v',)\n    def __init__(self, v):\n        self.v = v\n"
        "    def __del__(self):\n        print('bye', self.v)\ndef f(x):\n    s = {P(x)}\n    del s\n    return x\n",
    ],
)
def test_numbered_identity_hashes_leave_the_programs_result_as_it_is(sandbox, source):
    """The numbered trace's result stands for this hash seed's: it must be the one the program gives
    untraced, or a deterministic program reads as "different between hash seeds"."""
    report = check_determinism(source, "f(1)", sandbox=sandbox)
    assert report.deterministic and report.trace_usable, (report.reasons, report.trace_problem)


_DEEP = "def f(n):\n    if n == 0:\n        return 0\n    return 1 + f(n - 1)\n"


def test_the_report_carries_the_checked_trace_and_whether_it_is_the_untraced_runs(sandbox):
    """Monologues are written from the trace the check compared. Near the recursion limit the traced
    run is not the untraced one: a trace that returns where the program raises, or one the tracer cut
    short, is no trace of the program (``trace_problem``), though the program is deterministic."""
    ns = range(900, 1000)
    runs = sandbox.map_raw([{"mode": "run", "source": _DEEP, "call": f"f({n})"} for n in ns])
    n = [k for k, r in zip(ns, runs) if r["status"] == "passed"][-1]
    deepest, over, endless = check_determinism_many(
        [(_DEEP, f"f({n})"), (_DEEP, f"f({n + 1})"), ("def r(n):\n    return r(n + 1)\n", "r(0)")], sandbox=sandbox)
    assert deepest.trace_usable and deepest.trace.return_repr == str(n) and deepest.trace.events[0]["locals"] == {"n": str(n)}
    assert over.deterministic and not over.trace_usable
    assert over.trace_problem == f"traced, the call returns {n + 1}; untraced it raises RecursionError"
    assert endless.deterministic and endless.trace.stopped and "recursion limit" in endless.trace_problem


def test_output_ordered_by_object_identity_is_nondeterministic(sandbox):
    """Events can agree while the printed output shows the identity order (the set is read in C)."""
    src = (_NODE + "import operator\ndef f(xs):\n    print(sorted(map(operator.attrgetter('v'), set(map(N, xs)))))\n"
           "    return len(xs)\n")
    assert check_determinism(src, "f([0, 7, 3, 5])", sandbox=sandbox).deterministic
    report = check_determinism(src.replace("print(sorted(", "print(list("), "f([0, 7, 3, 5])", sandbox=sandbox)
    assert not report.deterministic and not report.trace_usable
    assert any("result of the traced f([0, 7, 3, 5]) differs" in r for r in report.reasons), report.reasons


def _timing_out(sandbox, monkeypatch, which):
    """``sandbox.map_raw`` answering ``timeout`` for the jobs ``which(job)`` picks, as a loaded machine may."""
    real = sandbox.map_raw

    def map_raw(jobs, **kw):
        jobs = list(jobs)
        return [{"status": "timeout", "exc_type": None, "exc_message": "timed out"} if which(j) else r
                for j, r in zip(jobs, real(jobs, **kw))]

    monkeypatch.setattr(sandbox, "map_raw", map_raw)


_BY_HASH_SEED = "def f():\n    return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'})\n"


def test_an_audit_timeout_does_not_skip_the_hash_seed_comparison(sandbox, monkeypatch):
    """A timed-out audit skipped comparing the two hash seeds: the report said only "timed out", which the
    executability stage lets through, for a result ordered by the hash seed."""
    from semcoder_jax.execution.determinism import TIMED_OUT

    _timing_out(sandbox, monkeypatch, lambda j: j.get("mode") == "audit")
    report = check_determinism(_BY_HASH_SEED, "f()", sandbox=sandbox)
    assert TIMED_OUT in report.reasons and report.timed_out == ["audit"], report.reasons
    assert any("differs between hash seeds" in r for r in report.reasons), report.reasons
    assert not report.deterministic and not report.only_timed_out


def test_a_trace_timeout_is_no_verdict_not_deterministic(sandbox, monkeypatch):
    """A timed-out trace run skipped the identity-order comparison and the report said deterministic."""
    from semcoder_jax.execution.determinism import TIMED_OUT

    _timing_out(sandbox, monkeypatch, lambda j: j.get("identity_hash") == "reversed")
    report = check_determinism("def f():\n    return 1\n", "f()", sandbox=sandbox)
    assert (report.deterministic, report.reasons, report.timed_out) == (False, [TIMED_OUT], ["trace"])
    assert report.only_timed_out and report.sandbox_failure is None


_FORGED_FAILURE = ("import posix, sys\nsys.modules['semcoder_jax.execution.child']._write(99, b'{\"status\": \"killed\", \"exc_type\": \"SandboxError\", "
                   "\"sandbox_failure\": true}\\n')\nposix._exit(0)\n")


def test_a_program_raising_its_own_sandbox_error_is_judged_not_retried(sandbox):
    """A program's own SandboxError (or a result it forged on its channel) must not read as a failed sandbox:
    its record would be redone forever."""
    reports = check_determinism_many([("class SandboxError(Exception):\n    pass\ndef f():\n    raise SandboxError('x')\n", "f()"),
                                      (_FORGED_FAILURE + "def f():\n    return 1\n", "f()")], sandbox=sandbox)
    assert [r.sandbox_failure for r in reports] == [None, None]
    assert reports[0].deterministic, reports[0].reasons
