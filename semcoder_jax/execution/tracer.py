"""Statement-level tracer: one function call, line by line, taken inside the sandbox.

A line event is recorded when a line *finishes* (at the next line or return of its frame) with the
locals that changed, so each event reads "after line N, these variables hold these values". Only
frames compiled from the program (filename ``<program>``) are traced, to ``max_depth`` nested calls.
Reprs are truncated to ``max_repr`` and memory addresses masked, so a trace is the same on every run
of the same sandbox (fixed hash seed).

The tracer's own frames (its ``run`` and the trace function, called at every call event) sit on the
traced program's stack: the recursion limit is raised by ``TRACER_HEADROOM`` while tracing, so a program
that runs untraced runs traced. A program at the limit all the same (one that recurses without end)
can make the trace function itself raise, which switches tracing off for the rest of the call: the
trace is then ``stopped`` (and ``truncated``); callers compare a trace's outcome with an untraced run.

What the tracer calls while the program runs or after it (builtins, ``sys``'s trace hooks) is bound at import, as
the child binds what it reports with, and the child builds the ``Collector`` (``ast``) before the program runs: the
program shares this interpreter and may replace them. The tracer's own objects stay in its reach
(``sys.gettrace()``, frames), as the child's do (see ``guard``).
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import json
import re
import sys
from typing import Any

from semcoder_jax.prompts import source_lines

PROGRAM_FILENAME = "<program>"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
TRUNCATION_MARKER = "...<truncated>"
# Frames the tracer may add on top of the program's deepest one: ``run`` and the trace function (measured
# 4 on CPython 3.11), with room for the trace function's own calls (reprs, the event list).
TRACER_HEADROOM = 50

# Bound here, not looked up when the trace function or ``run`` calls them: the traced program may have replaced them
# (a ``builtins.eval`` of its own was the traced call, a ``repr`` every local, ``sys.settrace`` switched tracing off).
# ``Collector``'s constructor (``ast``, ``source_lines``) runs before the program does (``child``).
_BaseException, _eval, _dict, _isinstance = builtins.BaseException, builtins.eval, builtins.dict, builtins.isinstance
_len, _repr, _sorted, _str, _sum, _type = builtins.len, builtins.repr, builtins.sorted, builtins.str, builtins.sum, builtins.type
_settrace, _gettrace = sys.settrace, sys.gettrace
_getrecursionlimit, _setrecursionlimit = sys.getrecursionlimit, sys.setrecursionlimit
# A class's own name, past any ``__name__`` its metaclass defines (the program's code, which may raise).
_class_name = type.__dict__["__name__"].__get__


def safe_repr(value: Any, limit: int) -> str:
    try:
        r = _repr(value)
    except _BaseException as e:  # user __repr__ may raise
        r = f"<repr failed: {_class_name(_type(e))}>"
    if " at 0x" in r:
        r = _ADDRESS.sub(" at 0x?", r)
    return r if _len(r) <= limit else r[:limit] + "..."


def safe_str(value: Any, limit: int) -> str:
    """``str(value)[:limit]`` with addresses masked; a user ``__str__`` may raise."""
    try:
        s = _str(value)
    except _BaseException as e:  # raising here would replace the program's exception
        s = f"<str failed: {_class_name(_type(e))}>"
    if " at 0x" in s:
        s = _ADDRESS.sub(" at 0x?", s)
    return s[:limit]


def mask_addresses(text: str | None) -> str | None:
    return _ADDRESS.sub(" at 0x?", text) if text and " at 0x" in text else text


def loop_bodies(source: str) -> dict[int, tuple[int, int]]:
    """Loop header line -> (first, last) line of its body."""
    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)) and node.body:
            first = node.body[0].lineno
            last = max(getattr(n, "end_lineno", first) or first for n in node.body)
            if first != node.lineno:
                out[node.lineno] = (first, last)
    return out


class _Frame:
    __slots__ = ("fid", "depth", "func", "prev_line", "snapshot", "raising")

    def __init__(self, fid: int, depth: int, func: str):
        self.fid, self.depth, self.func = fid, depth, func
        self.prev_line: int | None = None
        self.snapshot: dict[str, str] = {}
        self.raising = False


class Collector:
    """``sys.settrace`` hooks that build the event list; runs inside the sandboxed child."""

    def __init__(self, source: str, *, max_events: int = 10_000, max_bytes: int = 1_000_000,
                 max_repr: int = 256, max_depth: int = 3):
        self.lines = source_lines(source)
        self.loops = loop_bodies(source)
        self.max_events, self.max_bytes, self.max_repr, self.max_depth = max_events, max_bytes, max_repr, max_depth
        self.events: list[dict] = []
        self.loop_counts: dict[int, int] = {}
        self.size = 0
        self.truncated = False
        self.frames: dict[Any, _Frame] = {}
        self.depth = 0
        self.next_fid = 0
        self.stopped = False

    def _emit(self, event: dict, size: int) -> None:
        if self.truncated:
            return
        if _len(self.events) >= self.max_events or self.size + size > self.max_bytes:
            self.truncated = True
            return
        self.size += size
        self.events.append(event)

    def _changes(self, frame, st: _Frame) -> dict[str, str]:
        changed = {}
        for name, value in frame.f_locals.items():
            r = safe_repr(value, self.max_repr)
            if st.snapshot.get(name) != r:
                changed[name] = r
                st.snapshot[name] = r
        return changed

    def _line_done(self, frame, st: _Frame) -> None:
        line = st.prev_line
        if line is None:
            return
        changed = self._changes(frame, st)
        text = self.lines[line - 1].strip() if 0 < line <= _len(self.lines) else ""
        event = {"kind": "line", "line": line, "source": text, "locals": changed, "depth": st.depth, "frame": st.fid}
        if st.raising:
            event["raised"] = True  # the line did not finish: its exception left the frame
        self._emit(event, 48 + _len(text) + _sum(_len(k) + _len(v) for k, v in changed.items()))

    def global_trace(self, frame, event, arg):
        if event != "call" or frame.f_code.co_filename != PROGRAM_FILENAME or self.truncated:
            return None
        if self.depth >= self.max_depth:
            return None
        self.depth += 1
        st = _Frame(self.next_fid, self.depth, frame.f_code.co_name)
        self.next_fid += 1
        self.frames[frame] = st
        args = {name: safe_repr(value, self.max_repr) for name, value in frame.f_locals.items()}
        st.snapshot = _dict(args)
        self._emit({"kind": "call", "func": st.func, "line": frame.f_lineno, "locals": args, "depth": st.depth,
                    "frame": st.fid}, 48 + _sum(_len(k) + _len(v) for k, v in args.items()))
        return self.local_trace

    def local_trace(self, frame, event, arg):
        st = self.frames.get(frame)
        if st is None:
            return None
        if event == "line":
            st.raising = False  # an exception raised on the previous line was caught
            if not self.truncated:
                self._line_done(frame, st)
            prev, line = st.prev_line, frame.f_lineno
            body = self.loops.get(prev)
            if body is not None and body[0] <= line <= body[1]:
                self.loop_counts[prev] = self.loop_counts.get(prev, 0) + 1
            st.prev_line = line
        elif event == "return":
            if not self.truncated:
                self._line_done(frame, st)
            # Also sent when an exception leaves the frame, with ``arg`` None: that frame returned nothing.
            value = None if st.raising else safe_repr(arg, self.max_repr)
            record = {"kind": "return", "func": st.func, "line": frame.f_lineno, "value": value, "depth": st.depth,
                      "frame": st.fid}
            if st.raising:
                record["raised"] = True
            self._emit(record, 48 + _len(value or ""))
            del self.frames[frame]
            self.depth -= 1
        elif event == "exception":
            exc_type, exc, _ = arg
            st.raising = True
            msg = safe_repr(exc, self.max_repr) if not _isinstance(exc, _BaseException) else safe_str(exc, self.max_repr)
            self._emit({"kind": "exception", "line": frame.f_lineno, "type": _class_name(exc_type), "message": msg,
                        "depth": st.depth, "frame": st.fid}, 64 + _len(msg))
        return self.local_trace

    def run(self, call_code, env: dict):
        limit = _getrecursionlimit()
        _setrecursionlimit(limit + TRACER_HEADROOM)
        trace = self.global_trace  # one bound method, compared by identity: the program's own trace function may
        _settrace(trace)  # be what ``gettrace`` returns, and its ``__eq__`` the program's too
        try:
            return _eval(call_code, env)
        finally:
            # Python switches tracing off when the trace function raises (RecursionError at the limit):
            # the events stop there, with no sign of it in the program's result.
            if _gettrace() is not trace:
                self.stopped = self.truncated = True
            _settrace(None)
            _setrecursionlimit(limit)

    def result(self) -> dict:
        return {"events": self.events, "loop_counts": {_str(k): v for k, v in _sorted(self.loop_counts.items())},
                "truncated": self.truncated, "stopped": self.stopped}


@dataclasses.dataclass
class Trace:
    """A traced call. ``events`` are dicts with ``kind`` in call/line/return/exception (see module doc);
    a frame left by an exception has a ``return`` event with ``value`` None and ``raised``;
    ``exception`` is ``{"type", "message"}`` when the call raised; ``stopped``: the tracer hit the
    recursion limit and the events end early (``truncated`` too)."""

    call: str
    status: str
    events: list[dict] = dataclasses.field(default_factory=list)
    loop_counts: dict[int, int] = dataclasses.field(default_factory=dict)
    return_repr: str | None = None
    exception: dict | None = None
    truncated: bool = False
    stdout: str = ""
    stopped: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["loop_counts"] = {str(k): v for k, v in self.loop_counts.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Trace":
        d = dict(d)
        d["loop_counts"] = {int(k): v for k, v in d.get("loop_counts", {}).items()}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "Trace":
        return cls.from_dict(json.loads(text))


def trace_call(source: str, call: str, *, sandbox=None, max_events: int = 10_000, max_repr: int = 256,
               max_depth: int = 3, max_bytes: int = 1_000_000, timeout_s: float | None = None) -> Trace:
    """Run ``source`` then trace ``call`` (e.g. ``"f([1, 2])"``) in the sandbox."""
    return trace_many([(source, call)], sandbox=sandbox, max_events=max_events, max_repr=max_repr,
                      max_depth=max_depth, max_bytes=max_bytes, timeout_s=timeout_s)[0]


def trace_job(source: str, call: str | None, *, max_events: int = 10_000, max_repr: int = 256, max_depth: int = 3,
              max_bytes: int = 1_000_000, timeout_s: float | None = None) -> dict:
    """The sandbox job that traces ``call``: its response holds the events as ``payload``."""
    options = {"max_events": max_events, "max_repr": max_repr, "max_depth": max_depth, "max_bytes": max_bytes}
    return {"mode": "trace", "source": source, "call": call, "timeout_s": timeout_s, "trace_options": options}


def trace_many(items, *, sandbox=None, max_events: int = 10_000, max_repr: int = 256, max_depth: int = 3,
               max_bytes: int = 1_000_000, timeout_s: float | None = None, progress: bool = False) -> list[Trace]:
    """``trace_call`` over ``(source, call)`` pairs, concurrently; traces in input order."""
    from semcoder_jax.execution.sandbox import default_sandbox

    box = sandbox or default_sandbox()
    items = list(items)
    jobs = (trace_job(s, c, max_events=max_events, max_repr=max_repr, max_depth=max_depth, max_bytes=max_bytes,
                      timeout_s=timeout_s) for s, c in items)
    responses = box.map_raw(jobs, progress=progress, desc="trace", total=len(items))
    return [trace_from_response(call, response) for (_, call), response in zip(items, responses)]


def trace_from_response(call: str | None, response: dict) -> Trace:
    """The ``Trace`` of a ``trace_job``'s response."""
    from semcoder_jax.execution.result import ExecResult

    r = ExecResult.from_response(response)
    payload = r.payload or {}
    exception = None
    if r.status not in ("passed",):
        exception = {"type": r.exc_type or r.status, "message": mask_addresses(r.exc_message) or ""}
    return Trace(
        call=call, status=r.status, events=payload.get("events", []),
        loop_counts={int(k): v for k, v in payload.get("loop_counts", {}).items()},
        return_repr=mask_addresses(r.return_repr), exception=exception,
        truncated=bool(payload.get("truncated", False)) or r.status in ("timeout", "memory", "output_limit", "killed"),
        stdout=r.stdout, stopped=bool(payload.get("stopped", False)),
    )
