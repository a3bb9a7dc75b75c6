"""Monologues written from a recorded execution trace, without an LLM."""

from data_pipeline.stages import annotator_trace
from semcoder_jax import prompts


def test_builtin_monologue_from_a_recorded_trace():
    code = "def f(a):\n    s = 0\n    for x in a:\n        s += x\n    return s"
    trace = {"events": [
        {"kind": "call", "line": 1, "locals": {"a": "[2, 3]"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 2, "source": "s = 0", "locals": {"s": "0"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {"x": "2"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 4, "source": "s += x", "locals": {"s": "2"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {"x": "3"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 4, "source": "s += x", "locals": {"s": "5"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 5, "source": "return s", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "return", "line": 5, "value": "5", "depth": 1, "frame": 0}], "return_repr": "5", "truncated": False}
    fwd = annotator_trace.forward_monologue(code, "[2, 3]", trace)
    for section in ("[MONOLOGUE]", "### Understanding the Function", "### Key Properties and Constraints",
                    "### Execution Simulation", "### Conclusion", "[/MONOLOGUE]"):
        assert section in fwd
    assert "- [L6]: `s = 0` sets `s` to `0`." in fwd  # line 2 of the code is labelled L6
    assert "- [L8]: `s += x` sets `s` to `5`." in fwd
    assert fwd.endswith("[ANSWER]\nassert f([2, 3]) == 5\n[/ANSWER]")
    assert "[L6]" in prompts.label_lines(code).splitlines()[1]
    bwd = annotator_trace.backward_monologue(code, "[2, 3]", "5", trace)
    assert "### Reverse Deduction" in bwd and "### Execution Simulation" not in bwd
    assert bwd.index("sets `s` to `5`") < bwd.index("sets `s` to `2`")  # reasons from the output back
    assert "binds `a` to `[2, 3]`" in bwd


def test_bindings_are_those_of_f_when_a_helper_is_defined_first():
    """The parameters were the first function's: with a helper ``g(x)`` before ``f(x, y)`` the call
    was said to bind only ``x``."""
    code = "def g(x):\n    return x\n\ndef f(x, y):\n    return g(x) + y"
    trace = {"events": [
        {"kind": "call", "line": 4, "locals": {"x": "1", "y": "2"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 5, "source": "return g(x) + y", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "return", "line": 5, "value": "3", "depth": 1, "frame": 0}], "return_repr": "3", "truncated": False}
    assert "- The call binds `x` to `1` and `y` to `2`." in annotator_trace.forward_monologue(code, "1, 2", trace)
    assert "binds `x` to `1` and `y` to `2`" in annotator_trace.backward_monologue(code, "1, 2", "3", trace)


def test_star_parameters_are_parameters():
    """``f(*nums)`` was said to take "no arguments" (0 parameters), and ``f(a, *rest, **opts)`` to take
    and bind only ``a``, although the trace binds all three."""
    code = "def f(a, *rest, **opts):\n    return a + sum(rest)"
    trace = {"events": [
        {"kind": "call", "line": 1, "locals": {"a": "1", "rest": "(2, 3)", "opts": "{'k': 4}"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 2, "source": "return a + sum(rest)", "locals": {}, "depth": 1, "frame": 0},
        {"kind": "return", "line": 2, "value": "6", "depth": 1, "frame": 0}], "return_repr": "6", "truncated": False}
    fwd = annotator_trace.forward_monologue(code, "1, 2, 3, k=4", trace)
    assert "The function `f` takes `a`, `*rest`, `**opts`." in fwd
    assert "- The function has 3 parameter(s): `a`, `*rest`, `**opts`." in fwd
    assert "- The call binds `a` to `1` and `rest` to `(2, 3)` and `opts` to `{'k': 4}`." in fwd
    about, props = annotator_trace.understanding("def f(*nums):\n    return sum(nums)")
    assert about.startswith("The function `f` takes `*nums`.") and props[0] == "- The function has 1 parameter(s): `*nums`."


def test_a_truncated_trace_cites_no_line_for_the_return():
    """The last step of a truncated trace is not the return: "[L8]: the function returns 5" named a
    line that did not return, and the PYX-R rationale went from the last step straight to the outcome."""
    code = "def f(a):\n    s = 0\n    for x in a:\n        s += x\n    return s"
    trace = {"events": [
        {"kind": "call", "line": 1, "locals": {"a": "[2, 3]"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 2, "source": "s = 0", "locals": {"s": "0"}, "depth": 1, "frame": 0},
        {"kind": "line", "line": 3, "source": "for x in a:", "locals": {"x": "2"}, "depth": 1, "frame": 0}],
        "return_repr": "5", "truncated": True}
    fwd = annotator_trace.forward_monologue(code, "[2, 3]", trace)
    assert "- ... the execution continues, and the function returns `5`." in fwd
    assert "the function returns `5`." not in fwd.replace("continues, and the function returns `5`.", "")
    rationale = annotator_trace.refine_rationale(code, code.replace("s = 0", "s = 1"), "[2, 3]", "6", trace, entry="f")
    assert "- ... the execution continues ...\n- The function returns `5`, but the test expects `6`." in rationale
