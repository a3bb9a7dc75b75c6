"""Monologue answers: what counts as stating the real input or output, and what is kept for training."""

import pytest

from data_pipeline.stages import monologue, pyxr
from semcoder_jax import prompts


def test_answer_checks_keep_the_given_side():
    test = {"input": "[1, 2], 3", "output": "6"}
    good = "[ANSWER]\nassert f([1, 2], 3) == 6\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", good, test) == "assert f([1, 2], 3) == 6"
    assert monologue.answer_acceptable("forward", good.replace("3)", "4)"), test) is None  # input changed
    assert monologue.answer_acceptable("backward", good.replace("== 6", "== 7"), test) is None
    assert monologue.answer_acceptable("backward", "[ANSWER]\nassert f([0], 6) == 6\n[/ANSWER]", test) is not None
    assert monologue.answer_acceptable("forward", "no answer", test) is None


def test_forward_answer_must_state_the_real_output_as_a_typed_literal():
    test = {"input": "2", "output": "4"}
    wrap = "[MONOLOGUE]\n...\n[/MONOLOGUE]\n[ANSWER]\n{}\n[/ANSWER]".format
    # These all pass ``assert`` in the sandbox, but none states the real output 4.
    for bad in ("assert f(2) == f(2)", "assert f(2) == 4.0", "assert f(2) == 2 + 2"):
        assert monologue.answer_acceptable("forward", wrap(bad), test) is None, bad
    assert monologue.answer_acceptable("forward", wrap("assert f(True) == True"), {"input": "True", "output": "1"}) is None
    assert monologue.answer_acceptable("forward", wrap("assert f(2) == 4"), test) == "assert f(2) == 4"
    # Equal literals written differently are the same answer.
    assert monologue.answer_acceptable("forward", wrap('assert f("a") == ["a",  (1,)]'), {"input": "'a'", "output": "['a', (1,)]"})
    assert monologue.answer_acceptable("forward", wrap("assert f() == {'b': 1, 'a': 2}"), {"input": "", "output": "{'a': 2, 'b': 1}"})


def test_response_with_two_answers_is_rejected():
    test = {"input": "2", "output": "4"}
    two = "[MONOLOGUE]\n...\n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]\nOr rather:\n[ANSWER]\nassert f(2) == 5\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", two, test) is None
    assert monologue.answer_acceptable("backward", two.replace("== 5", "== 4"), test) is None


def test_forward_answer_with_keyword_input_is_accepted():
    test = {"input": "xs=[1, 2]", "output": "3"}
    good = "[ANSWER]\nassert f(xs=[1, 2]) == 3\n[/ANSWER]"
    assert monologue.answer_acceptable("forward", good, test) == "assert f(xs=[1, 2]) == 3"
    assert monologue.answer_acceptable("forward", good.replace("xs=", "ys="), test) is None


def test_forward_answer_with_double_star_input_is_accepted():
    test = {"input": "**{'xs': [1, 2]}", "output": "3"}
    good = "[ANSWER]\nassert f(**{'xs': [1, 2]}) == 3\n[/ANSWER]"
    assert monologue.answer_parts("assert f(**{'xs': [1, 2]}) == 3") == ("**{'xs': [1, 2]}", "3")
    assert monologue.answer_acceptable("forward", good, test) == "assert f(**{'xs': [1, 2]}) == 3"
    assert monologue.answer_acceptable("forward", good.replace("'xs'", "'ys'"), test) is None


def test_as_f_renames_entry_and_recursion():
    code = "def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)"
    assert monologue.as_f(code, "fact") == "def f(n):\n    return 1 if n <= 1 else n * f(n - 1)"


def test_llm_samples_are_kept_in_the_training_layout_only():
    """What is trained on runs from [MONOLOGUE] to [/ANSWER]: no preamble, no postscript, and no
    sample without reasoning."""
    body = "[MONOLOGUE]\nx doubles.\n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]"
    assert monologue.training_response(f"Sure! Here it is:\n{body}\nHope this helps.") == body
    assert monologue.training_response("[MONOLOGUE]\n \n[/MONOLOGUE]\n[ANSWER]\nassert f(2) == 4\n[/ANSWER]") is None
    assert monologue.training_response("[ANSWER]\nassert f(2) == 4\n[/ANSWER]") is None
    assert monologue.training_response("[MONOLOGUE]\nthinking\n[/MONOLOGUE]\nno answer") is None
    refine = "[MONOLOGUE]\nThe bug: x + 1.\n[/MONOLOGUE]\n[Refined]\n```python\ndef f(x):\n    return x\n```\n[/Refined]"
    assert monologue.training_response(f"Here:\n{refine}\nDone.", "Refined") == refine


def test_shipped_fewshot_examples_are_wellformed():
    for kind in ("forward", "backward", "refine"):
        msgs = monologue.fewshot_messages(kind)
        assert len(msgs) >= 2 and [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2)
        assert all(m["content"].startswith(prompts.TEMPLATES[kind].split("{")[0].strip()[:30]) for m in msgs[::2])
        for user, assistant in zip(msgs[::2], msgs[1::2]):
            if kind == "refine":
                assert pyxr.refined_code(assistant["content"])
            else:
                assert monologue.answer_parts(monologue.extract_answer(assistant["content"])) is not None


def test_shipped_fewshot_steps_name_the_lines_they_quote():
    """The LLM copies the few-shot layout: the refine example's steps read ``[line 6: `half = ...```
    (an unclosed bracket, and the labelled prompts' number for the unlabelled buggy code's line 2)."""
    import re

    for kind in ("forward", "backward", "refine"):
        msgs = monologue.fewshot_messages(kind)
        for user, assistant in zip(msgs[::2], msgs[1::2]):
            if kind == "refine":
                code = user["content"].split("### Buggy Solution\n```python\n")[1].split("\n```")[0]
                lines = dict(enumerate(prompts.source_lines(code), start=1))
                cited = re.findall(r"^- (\S+ ?\d*):? `(.*)` (?:sets|is executed)", assistant["content"], re.MULTILINE)
                assert cited and all(re.fullmatch(r"line \d+", at) for at, _ in cited), cited
            else:
                code = user["content"].split("[PYTHON]\n")[1].split("\n[/PYTHON]")[0]
                lines = {int(n): ln for ln, n in re.findall(r"^(.*) # \[L(\d+)\]$", code, re.MULTILINE)}
                cited = re.findall(r"^- (?:Before that, )?(\[L\d+\]): `(.*)` (?:sets|is executed)", assistant["content"], re.MULTILINE)
            for at, source in cited:
                assert lines[int(re.search(r"\d+", at).group())].strip() == source, (kind, at, source)


def test_one_llm_sample_is_one_reply_not_its_characters():
    """With ``llm_samples=1`` the client gave the bare text and the stages iterated its characters:
    no LLM monologue and no LLM PYX-R record was ever kept."""
    from data_pipeline.config import DataConfig
    from data_pipeline.llm import LLMClient
    from data_pipeline.stages.base import StageContext

    class OneReply(LLMClient):
        def _send(self, request):
            text = request["messages"][-1]["content"]
            if "Simulate the Execution" in text:
                x = int(text.split("assert f(")[1].split(")")[0])
                reply = f"[MONOLOGUE]\nIt doubles {x}.\n[/MONOLOGUE]\n[ANSWER]\nassert f({x}) == {2 * x}\n[/ANSWER]"
            elif "Debug and Refine" in text:
                reply = "[MONOLOGUE]\nIt adds instead.\n[/MONOLOGUE]\n[Refined]\n```python\ndef d(x):\n    return x * 2\n```\n[/Refined]"
            else:
                reply = "```python\ndef d(x):\n    return x + 2\n```"
            return [reply] * request["n"]

    record = {"id": "p", "problem": "Double x.", "solution": "def d(x):\n    return x * 2", "entry_point": "d",
              "tests": [{"input": "2", "output": "4"}, {"input": "3", "output": "6"}]}
    cfg = DataConfig(annotator="llm", pyxr="llm", llm_samples=1, forward_per_problem=1, backward_per_problem=0)
    ctx = StageContext(cfg)
    ctx._llm = OneReply(cfg.llm)
    try:
        (out,) = monologue.process(record, ctx)
        assert len(out["forward"]) == 1
        (out,) = pyxr.process(record, ctx)
        assert [r["buggy"] for r in out["refine"]] == ["def d(x):\n    return x + 2"]
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def stage_ctx():
    """One sandbox for this file's stage runs; each test sets its own config and reads its own notes."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    ctx = StageContext(DataConfig(workers=2))
    yield ctx
    ctx.close()


def _run_builtin(ctx, record, **config):
    from data_pipeline.config import DataConfig

    ctx.config = DataConfig(workers=2, **config)
    ctx.notes.clear()
    (out,) = monologue.process(record, ctx)
    return out


_IDENTITY_SET = ("class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"
                 "def g(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n")


@pytest.mark.parametrize("annotator", ["builtin", "llm"])
def test_every_call_a_monologue_states_is_checked_for_determinism(stage_ctx, annotator):
    """Earlier stages checked the first test only: a later test whose trace lists a set in the order of
    object addresses (another order on every build), or that reads the clock, became a monologue."""
    class Echo:  # an LLM that states the real output
        def samples(self, messages, n, **kw):
            text = messages[-1]["content"]
            call = text.split("assert ")[1].split(" == ??")[0]
            out = {"g([4])": "1", "g([0, 7, 3, 5])": "4", "g([])": "0"}.get(call.replace("f(", "g("), "?")
            return [f"[MONOLOGUE]\nIt counts.\n[/MONOLOGUE]\n[ANSWER]\nassert {call} == {out}\n[/ANSWER]"] * n

    stage_ctx._llm = Echo()
    record = {"id": "p", "solution": _IDENTITY_SET, "entry_point": "g",
              "tests": [{"input": "[4]", "output": "1"}, {"input": "[0, 7, 3, 5]", "output": "4"}]}
    out = _run_builtin(stage_ctx, record, annotator=annotator, forward_per_problem=2, backward_per_problem=0)
    assert [m["input"] for m in out["forward"]] == ["[4]"]
    assert dict(stage_ctx.notes) == {"monologue.forward_nondeterministic": 1}
    clock = {"id": "q", "solution": "import time\ndef g(x):\n    if x > 5:\n        return int(time.time() > 0)\n    return x\n",
             "entry_point": "g", "tests": [{"input": "1", "output": "1"}, {"input": "9", "output": "1"}]}
    out = _run_builtin(stage_ctx, clock, annotator="builtin", forward_per_problem=1, backward_per_problem=1)
    assert [m["input"] for m in out["forward"] + out["backward"]] == ["1"]
    assert sum(v for k, v in stage_ctx.notes.items() if k.endswith("_nondeterministic")) == 1, dict(stage_ctx.notes)


def test_the_builtin_monologue_is_written_from_the_checked_trace(stage_ctx, monkeypatch):
    """No second, unchecked trace: the monologue's values are those of the trace the check compared."""
    from semcoder_jax.execution import determinism

    seen = []
    real = determinism.check_determinism_many

    def spy(items, **kw):
        reports = real(items, **kw)
        seen.extend(r.trace for r in reports)
        return reports

    monkeypatch.setattr(determinism, "check_determinism_many", spy)
    monkeypatch.setattr("semcoder_jax.execution.tracer.trace_many", lambda *a, **k: pytest.fail("traced unchecked"))
    record = {"id": "p", "solution": "def g(x):\n    y = x * 3\n    return y\n", "entry_point": "g",
              "tests": [{"input": "2", "output": "6"}]}
    out = _run_builtin(stage_ctx, record, forward_per_problem=1, backward_per_problem=0)
    assert len(seen) == 1 and "sets `y` to `6`" in out["forward"][0]["response"]


def _deepest_untraced(ctx, code: str) -> int:
    ns = range(900, 1000)
    runs = ctx.sandbox.map_raw([{"mode": "run", "source": code, "call": f"f({n})"} for n in ns])
    passed = [n for n, r in zip(ns, runs) if r["status"] == "passed"]
    assert passed and passed[-1] < ns[-1], "the sandbox's recursion limit moved: widen the range"
    return passed[-1]


def test_a_recursion_near_the_limit_gets_its_monologue(stage_ctx):
    """Traced, the tracer's frames took ``f(n)`` over the recursion limit that it keeps untraced: the
    test was rejected (or, for a program that catches RecursionError, written from a cut trace)."""
    code = "def f(n):\n    if n == 0:\n        return 0\n    return 1 + f(n - 1)"
    n = _deepest_untraced(stage_ctx, code)
    record = {"id": "p", "solution": code, "entry_point": "f", "tests": [{"input": str(n), "output": str(n)}]}
    out = _run_builtin(stage_ctx, record, forward_per_problem=1, backward_per_problem=0)
    assert len(out["forward"]) == 1 and f"assert f({n}) == {n}" in out["forward"][0]["response"], dict(stage_ctx.notes)
    caught = ("def r(n):\n    return r(n + 1)\n\ndef f(x):\n    try:\n        r(0)\n    except RecursionError:\n"
              "        x = x + 1\n    return x")
    record = {"id": "q", "solution": caught, "entry_point": "f", "tests": [{"input": "1", "output": "2"}]}
    out = _run_builtin(stage_ctx, record, forward_per_problem=1, backward_per_problem=0)
    assert out["forward"] == [] and dict(stage_ctx.notes) == {"monologue.forward_trace_unusable": 1,
                                                              "monologue.problems_without_monologue": 1}


def test_a_timed_out_check_is_counted_as_such_not_as_nondeterministic(stage_ctx, monkeypatch):
    """A check that only timed out was counted ``<stage>_nondeterministic``, the program's fault."""
    from semcoder_jax import execution
    from semcoder_jax.execution import determinism

    monkeypatch.setattr(execution, "check_determinism", lambda *a, **kw: determinism.DeterminismReport(
        False, [determinism.TIMED_OUT], timed_out=["trace"]))
    before = dict(stage_ctx.notes)
    assert monologue.checked_trace("def f(x):\n    return x\n", {"input": "1", "output": "1"}, stage_ctx, "monologue.forward") is None
    assert stage_ctx.notes["monologue.forward_determinism_timeout"] == before.get("monologue.forward_determinism_timeout", 0) + 1
    assert stage_ctx.notes["monologue.forward_nondeterministic"] == before.get("monologue.forward_nondeterministic", 0)
