"""Line and branch coverage of one function under a set of inputs, from the tracer's own arcs.

The child runs a batch of calls ``func(<input>)`` (``run_batch``) recording executed lines and
line-to-line arcs of program frames; the parent scores them against the function's executable lines
(from its code objects) and its branch points (``if``/``for``/``while`` headers: both outcomes).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import io
import signal
import sys
import types

from semcoder_jax.execution.child import PROGRAM_FILENAME

EXIT = 0  # arc target for "left the frame"


class InputTimeout(BaseException):
    """One input ran past its time slice (BaseException so user ``except Exception`` cannot swallow it)."""


def run_batch(code: types.CodeType, func_name: str, inputs: list[str], per_input_timeout_s: float) -> list[dict]:
    """Inside the child: call ``func_name(<input>)`` for each input, each under a timer; collect arcs.

    The program runs afresh (output discarded) before each input, as it does when one input is traced
    alone: a mutable default argument or a global that an earlier call changed would otherwise decide
    whether a later input passes.
    """
    results = []

    def on_alarm(signum, frame):
        raise InputTimeout()

    for text in inputs:
        lines: set[int] = set()
        arcs: set[tuple[int, int]] = set()
        prev: dict = {}

        def local(frame, event, arg):
            if event == "line":
                line = frame.f_lineno
                lines.add(line)
                p = prev.get(frame)
                if p is not None:
                    arcs.add((p, line))
                prev[frame] = line
            elif event == "return":
                p = prev.pop(frame, None)
                if p is not None:
                    arcs.add((p, EXIT))
            return local

        def global_trace(frame, event, arg):
            return local if frame.f_code.co_filename == PROGRAM_FILENAME else None

        entry = {"input": text, "ok": False, "exc_type": None, "return_repr": None, "args_repr": None}
        try:
            env = {"__name__": "__main__", "__builtins__": builtins}
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(code, env)
            args, kwargs = eval(compile(f"(lambda *a, **k: (a, k))({text})", "<input>", "eval"), env)
            if not kwargs:
                try:
                    entry["args_repr"] = repr(args)[:10_000]
                except BaseException:  # noqa: BLE001
                    pass
            func = env[func_name]
            signal.signal(signal.SIGALRM, on_alarm)  # after the program, which may have set its own
            signal.setitimer(signal.ITIMER_REAL, per_input_timeout_s)
            sys.settrace(global_trace)
            try:
                value = func(*args, **kwargs)
            finally:
                sys.settrace(None)
                signal.setitimer(signal.ITIMER_REAL, 0)
            entry["ok"] = True
            r = repr(value)
            entry["return_repr"] = r[:10_000]
        except InputTimeout:
            entry["exc_type"] = "timeout"
        except BaseException as e:  # noqa: BLE001 - the input is rejected, the batch goes on
            entry["exc_type"] = type(e).__name__
        entry["lines"] = sorted(lines)
        entry["arcs"] = sorted(arcs)
        results.append(entry)
    return results


@dataclasses.dataclass(frozen=True)
class FunctionShape:
    """Executable lines and branch points (header line, first body line, last body line) of a function."""

    lines: frozenset[int]
    branches: tuple[tuple[int, int, int], ...]

    def score(self, lines: set[int], arcs: set[tuple[int, int]]) -> tuple[float, float]:
        line_cov = len(self.lines & lines) / len(self.lines) if self.lines else 1.0
        if not self.branches:
            return line_cov, 1.0
        taken = 0
        for head, first, last in self.branches:
            outs = [b for a, b in arcs if a == head and b != head]
            taken += any(b == first for b in outs)
            taken += any(b != first and not (first <= b <= last) for b in outs)
        return line_cov, taken / (2 * len(self.branches))


def _code_lines(code: types.CodeType) -> set[int]:
    out = {line for _, _, line in code.co_lines() if line}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _code_lines(const)
    return out


def function_shape(source: str, func_name: str) -> FunctionShape:
    """Shape of the top-level function ``func_name`` (``ValueError`` if absent)."""
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func_name), None)
    module = compile(source, PROGRAM_FILENAME, "exec")
    code = next((c for c in module.co_consts if isinstance(c, types.CodeType) and c.co_name == func_name), None)
    if node is None or code is None:
        raise ValueError(f"no top-level function {func_name!r} in the program")
    lines = _code_lines(code)
    body_lines = lines - {code.co_firstlineno}
    lines = body_lines or lines
    decorators = {d.lineno for d in node.decorator_list}
    lines -= decorators
    branches = []
    for n in ast.walk(node):
        if isinstance(n, (ast.If, ast.For, ast.While, ast.AsyncFor)) and n.body:
            first = n.body[0].lineno
            last = max(b.end_lineno or b.lineno for b in n.body)
            if first != n.lineno:
                branches.append((n.lineno, first, last))
    return FunctionShape(frozenset(lines), tuple(sorted(set(branches))))


def measure_coverage(source: str, func_name: str, inputs: list[str], *, sandbox=None,
                     per_input_timeout_s: float = 1.0) -> tuple[float, float]:
    """(line coverage, branch coverage) of ``func_name`` over ``inputs`` (argument texts)."""
    shape = function_shape(source, func_name)
    entries = run_inputs(source, func_name, inputs, sandbox=sandbox, per_input_timeout_s=per_input_timeout_s)
    lines: set[int] = set()
    arcs: set[tuple[int, int]] = set()
    for e in entries:
        lines.update(e["lines"])
        arcs.update(map(tuple, e["arcs"]))
    return shape.score(lines, arcs)


def run_inputs(source: str, func_name: str, inputs: list[str], *, sandbox=None, per_input_timeout_s: float = 1.0,
               batch_size: int = 64) -> list[dict]:
    """Per-input ``{"input", "ok", "exc_type", "return_repr", "lines", "arcs"}`` from the sandbox.

    Inputs run in batches in one child each; a batch that dies as a whole (a hard crash, the wall
    clock) is retried one input per child so the other inputs still get a verdict.
    """
    from semcoder_jax.execution.sandbox import default_sandbox

    box = sandbox or default_sandbox()
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]

    def job(batch):
        return {"mode": "cover", "source": source, "func_name": func_name, "inputs": batch,
                "per_input_timeout_s": per_input_timeout_s,
                "timeout_s": per_input_timeout_s * len(batch) + box.config.timeout_s}

    out: list[dict] = []
    for batch, response in zip(batches, box.map_raw(job(b) for b in batches)):
        payload = response.get("payload")
        if isinstance(payload, list) and len(payload) == len(batch):
            out.extend(payload)
            continue
        if len(batch) == 1:
            out.append({"input": batch[0], "ok": False, "exc_type": response.get("exc_type") or response.get("status"),
                        "return_repr": None, "lines": [], "arcs": []})
            continue
        singles = box.map_raw(job([x]) for x in batch)
        for x, r in zip(batch, singles):
            p = r.get("payload")
            out.extend(p if isinstance(p, list) and len(p) == 1 else
                       [{"input": x, "ok": False, "exc_type": r.get("exc_type") or r.get("status"),
                         "return_repr": None, "lines": [], "arcs": []}])
    return out
