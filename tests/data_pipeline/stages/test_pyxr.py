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
