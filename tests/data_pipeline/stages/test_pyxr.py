"""PYX-R debugging records: mutants, LLM-written bugs, and LLM failures counted apart."""

from data_pipeline.stages import pyxr


def test_mutants_are_distinct_single_site_changes():
    code = "def f(xs):\n    t = 0\n    for x in xs:\n        if x > 1:\n            t += x\n    return t"
    ms = list(pyxr.mutants(code))
    assert len(ms) == len(set(ms)) >= 4
    assert "if x >= 1:" in "\n".join(ms) and "t = 1" in "\n".join(ms)


def test_llm_pyxr_bug_must_define_the_function_and_fail_not_time_out():
    """A sample that renames the function, is merely slow, or whose own example code fails is not the
    buggy code of a PYX-R record."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    class ScriptedLLM:
        def __init__(self, replies):
            self.replies = replies

        def samples(self, messages, n, **kw):
            return self.replies

        def chat(self, messages, **kw):
            return ("[MONOLOGUE]\nIt subtracts one instead of adding it.\n[/MONOLOGUE]\n"
                    "[Refined]\n```python\ndef f(x):\n    return x + 1\n```\n[/Refined]")

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
