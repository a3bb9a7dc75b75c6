"""Text renderings of a ``Trace`` in the trace formats compared in the SemCoder paper.

Line numbers in every format match ``label_code``: program line ``n`` is labelled ``L{n + offset}``
with SemCoder's offset (its prompts number code from L5), so a label in a trace points at the same
line in the labelled code shown beside it.
"""

from __future__ import annotations

from semcoder_jax.execution.tracer import Trace
from semcoder_jax.prompts import LINE_LABEL_OFFSET, label_lines, source_lines

MAX_CONCISE_STATES = 3


def label_code(code: str, offset: int = LINE_LABEL_OFFSET) -> str:
    """Each non-blank line suffixed ``# [L{n}]``."""
    return label_lines(code, offset)


def _state_text(state: dict[str, str]) -> str:
    return "{" + ", ".join(f"{name!r}: {value}" for name, value in state.items()) + "}"


def _steps(trace: Trace, max_depth: int):
    """(event, full state of its frame after the event) for line events up to ``max_depth``."""
    frames: dict[int, dict[str, str]] = {}
    for ev in trace.events:
        if ev["kind"] == "call":
            frames[ev["frame"]] = dict(ev.get("locals", {}))
        elif ev["kind"] == "line":
            state = frames.setdefault(ev["frame"], {})
            state.update(ev.get("locals", {}))
            if ev["depth"] <= max_depth:
                yield ev, dict(state)


def render_exception(trace: Trace) -> str:
    """``[EXCEPTION] Type: message [/EXCEPTION]`` for a call that raised ('' otherwise)."""
    if trace.exception is None:
        return ""
    exc = trace.exception
    message = f"{exc['type']}: {exc['message']}" if exc.get("message") else exc["type"]
    return f"[EXCEPTION] {message} [/EXCEPTION]"


def _ending(trace: Trace) -> str:
    if trace.exception is not None:
        return render_exception(trace)
    return f"[OUTPUT]\n{trace.return_repr}\n[/OUTPUT]"


def _truncation(trace: Trace) -> list[str]:
    return ["[TRUNCATED]"] if trace.truncated else []


def render_scratchpad(code: str, trace: Trace, *, max_depth: int = 1, offset: int = LINE_LABEL_OFFSET) -> str:
    """Scratchpad (Nye et al.): the input, the full local state after each executed line, the output."""
    out = ["[INPUT]", trace.call, "[/INPUT]"]
    for ev, state in _steps(trace, max_depth):
        out += ["[STATE]", f"L{ev['line'] + offset}: {_state_text(state)}", "[/STATE]"]
    return "\n".join(out + _truncation(trace) + [_ending(trace)])


def render_next(code: str, trace: Trace, *, max_depth: int = 1, offset: int = LINE_LABEL_OFFSET) -> str:
    """NeXT-style: the code with, after each executed line, its numbered states in execution order."""
    per_line: dict[int, list[str]] = {}
    for k, (ev, _) in enumerate(_steps(trace, max_depth)):
        per_line.setdefault(ev["line"], []).append(f"[STATE-{k}] {_state_text(ev['locals'])} [/STATE-{k}]")
    lines = []
    for n, line in enumerate(source_lines(code), start=1):
        if line.strip():
            line = f"{line} # [L{n + offset}]"
            if n in per_line:
                line = f"{line} {' '.join(per_line[n])}"
        lines.append(line)
    return "\n".join(lines + _truncation(trace) + [_ending(trace)])


def render_concise(code: str, trace: Trace, *, max_depth: int = 1, offset: int = LINE_LABEL_OFFSET) -> str:
    """``[Lk] {changed locals} [/Lk]`` per executed line, at most three per line, then ``...``."""
    seen: dict[int, int] = {}
    out = []
    for ev, _ in _steps(trace, max_depth):
        n = ev["line"]
        seen[n] = seen.get(n, 0) + 1
        label = f"L{n + offset}"
        if seen[n] <= MAX_CONCISE_STATES:
            out.append(f"[{label}] {_state_text(ev['locals'])} [/{label}]")
        elif seen[n] == MAX_CONCISE_STATES + 1:
            out.append(f"[{label}] ... [/{label}]")
    return "\n".join(out + _truncation(trace) + [_ending(trace)])


FORMATS = {"scratchpad": render_scratchpad, "next": render_next, "concise": render_concise}


def render_trace(code: str, trace: Trace, fmt: str, **kwargs) -> str:
    """Render by format name: ``json``, ``scratchpad``, ``next`` or ``concise``."""
    if fmt == "json":
        return trace.to_json()
    try:
        return FORMATS[fmt](code, trace, **kwargs)
    except KeyError:
        raise ValueError(f"unknown trace format {fmt!r}; expected json or one of {sorted(FORMATS)}") from None
