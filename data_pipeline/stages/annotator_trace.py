"""The built-in annotator: forward and backward monologues written from a real execution trace.

No LLM. Every value a monologue states (arguments, assigned values, the return value) is a repr
copied from the trace; statements cite the ``[Lk]`` labels of the labelled prompt
(``k = line + LINE_LABEL_OFFSET``). Value statements have one fixed shape so tests can check them:
``- [Lk]: `<source>` sets `name` to `<repr>`[, `name` to `<repr>`]`` and ``returns `<repr>```.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from semcoder_jax.prompts import LINE_LABEL_OFFSET, source_lines


@dataclass
class Step:
    line: int
    source: str
    changes: dict[str, str] = field(default_factory=dict)


@dataclass
class TraceView:
    """The parts of an execution trace the annotator uses, whatever the tracer's field names."""

    args: dict[str, str]
    steps: list[Step]
    return_repr: str | None
    truncated: bool


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


def view_trace(trace: Any, params: list[str]) -> TraceView:
    """Line events of the traced call's own frame (nested calls are summarised by the calling line)."""
    events = _get(trace, "events", default=[]) or []
    calls = [e for e in events if e.get("kind") == "call"]
    top = calls[0] if calls else None
    frame = top.get("frame") if top else None
    steps = [
        Step(int(e["line"]), str(e.get("source", "")).strip(), dict(e.get("locals") or {}))
        for e in events
        if e.get("kind") == "line" and (frame is None or e.get("frame") == frame)
    ]
    args = dict(top.get("locals") or {}) if top else {}
    args = {p: args[p] for p in params if p in args} or args
    return TraceView(args, steps, _get(trace, "return_repr"), bool(_get(trace, "truncated", default=False)))


def label(line: int, offset: int | None = LINE_LABEL_OFFSET) -> str:
    """``[Lk]`` of the labelled prompt, or ``line n`` of unlabelled code (``offset=None``)."""
    return f"[L{line + offset}]" if offset is not None else f"line {line}"


def _fmt_changes(changes: dict[str, str]) -> str:
    return ", ".join(f"`{k}` to `{v}`" for k, v in changes.items())


def step_sentence(step: Step, offset: int | None = LINE_LABEL_OFFSET) -> str:
    if step.changes:
        return f"- {label(step.line, offset)}: `{step.source}` sets {_fmt_changes(step.changes)}."
    return f"- {label(step.line, offset)}: `{step.source}` is executed."


def understanding(code: str, name: str = "f") -> tuple[str, list[str]]:
    """Static description of the function (no values), and its key properties."""
    fn = _function(code, name)
    params = [shown for _, shown in _signature(fn)]
    kinds = set(type(n).__name__ for n in ast.walk(fn))
    called = sorted({n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)})
    methods = sorted({n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)})
    plist = ", ".join(f"`{p}`" for p in params) or "no arguments"
    parts = [f"The function `{fn.name}` takes {plist}."]
    if "For" in kinds or "While" in kinds:
        parts.append("It iterates with " + " and ".join(x for x, k in (("a `for` loop", "For"), ("a `while` loop", "While")) if k in kinds) + ".")
    if "If" in kinds or "IfExp" in kinds:
        parts.append("It branches on conditions.")
    if "ListComp" in kinds or "DictComp" in kinds or "SetComp" in kinds or "GeneratorExp" in kinds:
        parts.append("It builds values with comprehensions.")
    if called:
        parts.append("It calls " + ", ".join(f"`{c}`" for c in called) + ".")
    if methods:
        parts.append("It uses the methods " + ", ".join(f"`.{m}`" for m in methods) + ".")
    returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
    props = [
        f"- The function has {len(params)} parameter(s): {plist}.",
        f"- It has {len(returns)} `return` statement(s); the result depends only on the arguments.",
        "- It reads no files, clock, randomness or environment, so the same input always gives the same output.",
    ]
    return " ".join(parts), props


def _bind(args: dict[str, str]) -> str:
    return " and ".join(f"`{k}` to `{v}`" for k, v in args.items()) or "no arguments"


def _select(steps: list[Step], max_steps: int) -> tuple[list[Step], list[Step], int]:
    if len(steps) <= max_steps:
        return steps, [], 0
    head = steps[: max_steps // 2]
    tail = steps[-(max_steps - len(head)) :]
    return head, tail, len(steps) - len(head) - len(tail)


def forward_monologue(code: str, call_input: str, trace: Any, *, max_steps: int = 24) -> str:
    about, props = understanding(code)
    view = view_trace(trace, understanding_params(code))
    head, tail, skipped = _select(view.steps, max_steps)
    lines = ["[MONOLOGUE]", "### Understanding the Function", about, "", "### Key Properties and Constraints", *props, "",
             "### Execution Simulation", f"Let's simulate the execution of `f({call_input})` step by step.",
             f"- The call binds {_bind(view.args)}."]
    lines += [step_sentence(s) for s in head]
    if skipped:
        lines.append(f"- ... {skipped} more steps run in the same way ...")
    lines += [step_sentence(s) for s in tail]
    if view.truncated:  # the last step recorded is not the return: no line to cite
        lines.append(f"- ... the execution continues, and the function returns `{view.return_repr}`.")
    elif view.steps:
        lines.append(f"- {label(view.steps[-1].line)}: the function returns `{view.return_repr}`.")
    given = f"the input `{call_input}`" if call_input.strip() else "the call `f()`"
    lines += ["", "### Conclusion", f"The function returns `{view.return_repr}` for {given}.", "[/MONOLOGUE]",
              "[ANSWER]", f"assert f({call_input}) == {view.return_repr}", "[/ANSWER]"]
    return "\n".join(lines)


def backward_monologue(code: str, call_input: str, output: str, trace: Any, *, max_steps: int = 24) -> str:
    about, props = understanding(code)
    view = view_trace(trace, understanding_params(code))
    steps = list(reversed(view.steps))
    lines = ["[MONOLOGUE]", "### Understanding the Function", about, "", "### Key Properties and Constraints", *props, "",
             "### Reverse Deduction", f"We need an input for which `f` returns `{output}`; we reason backwards from the output."]
    if steps:
        lines.append(f"- The final output `{output}` is returned at {label(steps[0].line)} by `{steps[0].source}`.")
    shown = [s for s in steps if s.changes]
    for s in shown[:max_steps]:
        lines.append(f"- Before that, {label(s.line)}: `{s.source}` sets {_fmt_changes(s.changes)}.")
    if len(shown) > max_steps:
        lines.append(f"- ... {len(shown) - max_steps} earlier steps lead there in the same way ...")
    lines.append(f"- Going back to the start of the call, these values follow when the call binds {_bind(view.args)}.")
    lines += ["", "### Conclusion", f"The input `{call_input}` makes `f` return `{output}`.", "[/MONOLOGUE]",
              "[ANSWER]", f"assert f({call_input}) == {output}", "[/ANSWER]"]
    return "\n".join(lines)


def _function(code: str, name: str) -> ast.FunctionDef:
    """The top-level function ``name`` (a helper may come first), else the first function."""
    tree = ast.parse(code)
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    return fn or next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))


def _signature(fn: ast.FunctionDef) -> list[tuple[str, str]]:
    """``(name, as written)`` of every parameter in order: ``*args`` and ``**kwargs`` are parameters too."""
    a = fn.args
    out = [(p.arg, p.arg) for p in [*a.posonlyargs, *a.args]]
    out += [(a.vararg.arg, f"*{a.vararg.arg}")] if a.vararg else []
    out += [(p.arg, p.arg) for p in a.kwonlyargs]
    return out + ([(a.kwarg.arg, f"**{a.kwarg.arg}")] if a.kwarg else [])


def understanding_params(code: str, name: str = "f") -> list[str]:
    return [param for param, _ in _signature(_function(code, name))]


def refine_rationale(buggy: str, fixed: str, failing_input: str, expected: str, trace: Any, *, entry: str, max_steps: int = 24) -> str:
    """Rubber-duck debugging from the faulty trace: simulation, root cause (the differing lines), fix."""
    import difflib

    view = view_trace(trace, understanding_params(buggy, entry))
    head, tail, skipped = _select(view.steps, max_steps)
    got = view.return_repr
    exc = _get(trace, "exception", "exc", default=None)
    outcome = f"returns `{got}`" if exc is None else f"raises `{_get(exc, 'type', 'exc_type', default=exc)}`"
    lines = ["[MONOLOGUE]", "### Execution Simulation", f"Let's simulate the buggy code on the failed test `{entry}({failing_input})`.",
             f"- The call binds {_bind(view.args)}."]
    lines += [step_sentence(s, None) for s in head]
    if skipped:
        lines.append(f"- ... {skipped} more steps run in the same way ...")
    lines += [step_sentence(s, None) for s in tail]
    if view.truncated:
        lines.append("- ... the execution continues ...")
    lines.append(f"- The function {outcome}, but the test expects `{expected}`.")
    b_lines, f_lines = source_lines(buggy), source_lines(fixed)
    lines += ["", "### Root Cause Analysis"]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b_lines, b=f_lines).get_opcodes():
        if tag == "equal":
            continue
        for k in range(i1, i2):
            lines.append(f"- Line {k + 1} `{b_lines[k].strip()}` is wrong for this input.")
        if j2 > j1:
            lines.append("- It should read: " + "; ".join(f"`{x.strip()}`" for x in f_lines[j1:j2]) + ".")
    lines += ["", "### Bug Fixing", "Correcting those lines gives the refined code below, which passes the failed test and the others.",
              "[/MONOLOGUE]", "[Refined]", "```python", fixed, "```", "[/Refined]"]
    return "\n".join(lines)
