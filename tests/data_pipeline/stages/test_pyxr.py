"""PYX-R debugging records: mutants, LLM-written bugs, and LLM failures counted apart."""

import pytest

from data_pipeline.stages import pyxr


def test_mutants_are_distinct_single_site_changes():
    code = "def f(xs):\n    t = 0\n    for x in xs:\n        if x > 1:\n            t += x\n    return t"
    ms = list(pyxr.mutants(code))
    assert len(ms) == len(set(ms)) >= 4
    assert "if x >= 1:" in "\n".join(ms) and "t = 1" in "\n".join(ms)


class ScriptedLLM:
    """Bug samples as given; every refine request answered with a fix that adds one."""

    def __init__(self, replies):
        self.replies = replies

    def samples(self, messages, n, **kw):
        return self.replies

    def chat(self, messages, **kw):
        return ("[MONOLOGUE]\nIt subtracts one instead of adding it.\n[/MONOLOGUE]\n"
                "[Refined]\n```python\ndef f(x):\n    return x + 1\n```\n[/Refined]")


def test_llm_pyxr_bug_must_define_the_function_and_fail_not_time_out():
    """A sample that renames the function, is merely slow, or whose own example code fails is not the
    buggy code of a PYX-R record."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "tests": [{"input": "1", "output": "2"}]}
    slow_but_right = "def f(x):\n    import time\n    time.sleep(5)\n    return x + 1\n"
    renamed = "def g(x):\n    return x - 1\n"
    wrong = "def f(x):\n    return x - 1\n"
    right_but_bad_example = "def f(x):\n    return x + 1\n\nassert f(1) == 3\n"
    ctx = StageContext(DataConfig(pyxr="llm", llm_samples=3))
    try:
        for samples, expected in (([slow_but_right, renamed, right_but_bad_example], None),
                                  ([slow_but_right, renamed, wrong], wrong)):
            ctx._llm = ScriptedLLM(samples)
            (out,) = pyxr.process(record, ctx)
            assert [r["buggy"] for r in out["refine"]] == ([expected.strip()] if expected else [])
    finally:
        if ctx._sandbox is not None:
            ctx._sandbox.__exit__(None, None, None)


def test_a_failed_fix_request_is_counted_as_llm_failed_not_as_the_solutions_fault():
    """Retries running out were counted as ``not_executable``: a server outage read as bad solutions."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import StageContext

    class Unreachable:
        def chat(self, messages, **kw):
            return None  # what LLMClient.chat gives when retries run out

        def samples(self, messages, n, **kw):
            return None

    from data_pipeline.stages import inputs

    record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "solution": "def f(x):\n    return x + one\n", "seed_inputs": ["1"]}
    ctx = StageContext(DataConfig(synthesis="llm"))
    ctx._llm = Unreachable()
    try:
        assert executability.process(record, ctx).reason == "llm_failed"
        # with no seed inputs of its own, a problem asks the LLM for some
        no_seeds = dict(record, solution="def f(x):\n    return x + 1\n", seed_inputs=[])
        assert inputs.process(no_seeds, ctx).reason == "llm_failed"
        # with seed inputs of its own, a problem goes on from them, and the missing reply is counted
        assert isinstance(inputs.process(dict(no_seeds, seed_inputs=["1"]), ctx), list)
        assert ctx.notes["inputs.llm_failed"] == 1  # the rejected record counts as its reject, not here too
        # monologue and PYX-R samples: no reply is counted apart from wrong samples
        from data_pipeline.stages import monologue, pyxr

        assert monologue._llm_monologue("forward", no_seeds["solution"], {"input": "1", "output": "2"}, ctx, 0) is None
        assert pyxr._llm_bug(dict(no_seeds, problem="Add one."), [{"input": "1", "output": "2"}], ctx) is None
        assert ctx.notes["monologue.llm_failed"] == 1 and ctx.notes["pyxr.llm_failed"] == 1
    finally:
        ctx.close()


def test_each_monologue_or_bug_without_a_reply_is_counted_once():
    """A failed request was noted as ``llm_failed`` and again as the kind's ``rejected`` (or PYX-R's
    ``no_bug_found``): the notes added up to more monologues than were asked for."""
    from data_pipeline.build import apply_stage
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import monologue
    from data_pipeline.stages.base import StageContext

    class ForwardUnanswered:
        def samples(self, messages, n, **kw):  # None: what LLMClient gives when retries run out
            return None if ") == ??" in messages[-1]["content"] else ["no answer"] * n

        def chat(self, messages, **kw):
            return None

    record = {"id": "p1", "entry_point": "add_one", "problem": "Add one.", "solution": "def add_one(x):\n    return x + 1\n",
              "tests": [{"input": "1", "output": "2"}, {"input": "2", "output": "3"}, {"input": "3", "output": "4"}]}
    ctx = StageContext(DataConfig(annotator="llm", pyxr="llm", forward_per_problem=2, backward_per_problem=1))
    ctx._llm = ForwardUnanswered()
    try:
        outputs, rejects, report = apply_stage(monologue.process, [record], ctx, workers=1)
        assert outputs[0]["forward"] == outputs[0]["backward"] == [] and not rejects
        assert report["in"] == report["kept"] + sum(report["rejected"].values()) == 1
        notes = dict(ctx.notes)
        assert notes == {"monologue.llm_failed": 2, "monologue.backward_rejected": 1, "monologue.problems_without_monologue": 1}
        ctx.notes.clear()
        ctx._llm.samples = lambda messages, n, **kw: None
        outputs, rejects, report = apply_stage(pyxr.process, outputs, ctx, workers=1)
        assert outputs[0]["refine"] == [] and report["in"] == report["kept"] == 1
        assert dict(ctx.notes) == {"pyxr.llm_failed": 1}
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def stage_ctx():
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    ctx = StageContext(DataConfig(pyxr="mutation", workers=2))
    yield ctx
    ctx.close()


_NODE = "class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"


def _mutation_record(ctx, monkeypatch, fixed: str, buggy: str, test: dict) -> dict:
    """``pyxr.process`` with ``buggy`` as the only mutant of ``fixed``."""
    monkeypatch.setattr(pyxr, "mutants", lambda code: iter([buggy]))
    ctx.notes.clear()
    (out,) = pyxr.process({"id": "p", "entry_point": "f", "solution": fixed, "tests": [test]}, ctx)
    return out


def test_a_bug_whose_trace_is_not_reproducible_is_dropped_and_counted(stage_ctx, monkeypatch):
    """The buggy program's trace went into the rationale unchecked: a set listed in the order of object
    addresses (another order on every build) was stated as the faulty execution."""
    fixed = _NODE + "def f(xs):\n    s = {N(x) for x in xs}\n    return len(s)"
    buggy = fixed.replace("len(s)", "len(s) + 1")
    out = _mutation_record(stage_ctx, monkeypatch, fixed, buggy, {"input": "[0, 7, 3, 5]", "output": "4"})
    assert out["refine"] == []
    assert dict(stage_ctx.notes) == {"pyxr.bug_nondeterministic": 1, "pyxr.no_bug_found": 1}
    out = _mutation_record(stage_ctx, monkeypatch, fixed, buggy, {"input": "[4]", "output": "1"})  # one member: one order
    assert [r["buggy"] for r in out["refine"]] == [buggy] and "sets `s` to `{N(4)}`" in out["refine"][0]["response"]


def test_a_bug_near_the_recursion_limit_is_traced_as_it_runs(stage_ctx, monkeypatch):
    """Traced, the tracer's frames took the buggy ``f(n)`` over the recursion limit: the rationale said
    it raises RecursionError where the real run returns a wrong value. One that recurses without end
    stops the tracer: dropped, counted."""
    fixed = "def f(n):\n    if n == 0:\n        return 0\n    return 1 + f(n - 1)"
    ns = range(900, 1000)
    runs = stage_ctx.sandbox.map_raw([{"mode": "run", "source": fixed, "call": f"f({n})"} for n in ns])
    n = [k for k, r in zip(ns, runs) if r["status"] == "passed"][-1] - 2
    buggy = fixed.replace("1 + f", "2 + f")
    out = _mutation_record(stage_ctx, monkeypatch, fixed, buggy, {"input": str(n), "output": str(n)})
    (record,) = out["refine"]
    assert f"- The function returns `{2 * n}`, but the test expects `{n}`." in record["response"]
    endless = fixed.replace("f(n - 1)", "f(n + 1)")
    out = _mutation_record(stage_ctx, monkeypatch, fixed, endless, {"input": "3", "output": "3"})
    assert out["refine"] == [] and dict(stage_ctx.notes) == {"pyxr.bug_trace_unusable": 1, "pyxr.no_bug_found": 1}


def test_an_llm_bug_that_fails_by_chance_is_dropped_and_counted(stage_ctx):
    """An LLM-written bug's failed test is the record's execution feedback: one that fails another way on
    each run (it reads the clock or randomness) is not a bug to debug."""
    from data_pipeline.config import DataConfig

    record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "tests": [{"input": "1", "output": "2"}]}
    by_chance = "import random\ndef f(x):\n    return x + random.choice([2, 3])\n"  # fails, by another answer each run
    wrong = "def f(x):\n    return x - 1\n"
    stage_ctx.config = DataConfig(pyxr="llm", llm_samples=2, workers=2)
    try:
        stage_ctx.notes.clear()
        stage_ctx._llm = ScriptedLLM([by_chance, wrong])
        (out,) = pyxr.process(record, stage_ctx)
    finally:
        stage_ctx.config = DataConfig(pyxr="mutation", workers=2)
    assert [r["buggy"] for r in out["refine"]] == [wrong.strip()]
    assert stage_ctx.notes["pyxr.bug_nondeterministic"] == 1
