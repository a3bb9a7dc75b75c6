"""Line and branch coverage of one function under a set of inputs, from the tracer's own arcs.

The child runs a batch of calls ``func(<input>)`` (``run_batch``) recording executed lines and
line-to-line arcs of program frames; the parent scores them against the function's executable lines
(from its code objects) and its branch points (``if``/``for``/``while`` headers: both outcomes).

What ``run_batch`` calls once the program's top level has run (builtins, ``sys.settrace``, ``signal``, ``os``,
``select``, ``json``, ``io``) is bound at import: the program shares the child's interpreter and may replace them.
"""

from __future__ import annotations

import _signal as _c_signal
import ast
import builtins
import dataclasses
import json
import os
import select
import sys
import time
import types
from _io import StringIO as _StringIO
from _json import make_scanner as _c_make_scanner

from semcoder_jax.execution import child, guard
from semcoder_jax.execution.child import PROGRAM_FILENAME

# Bound here, not looked up when ``run_batch`` and its helpers run, after the program's top level: a fake ``eval`` or
# ``enumerate`` chose the inputs, ``exec`` the program of later inputs, ``sys.settrace`` or ``sorted`` the lines,
# ``json.loads``, ``os.read`` or ``select.select`` the entry a forked input's parent read back.
_BaseException, _OSError, _RecursionError, _StopIteration, _ValueError = (
    BaseException, OSError, RecursionError, StopIteration, ValueError)
_compile, _eval, _exec = builtins.compile, builtins.eval, builtins.exec
_bytearray, _dict, _enumerate, _isinstance, _len, _repr, _set, _sorted, _type = (
    bytearray, dict, enumerate, isinstance, len, repr, set, sorted, type)
_settrace = sys.settrace
_perf_counter, _monotonic, _sleep = time.perf_counter, time.monotonic, time.sleep
# ``_signal``'s own: ``signal.signal`` converts through ``int`` and ``enum``, the program's to replace too.
_signal, _setitimer = _c_signal.signal, _c_signal.setitimer
_ITIMER_REAL, _SIGALRM, _SIGCHLD, _SIGKILL, _SIG_DFL = (
    _c_signal.ITIMER_REAL, _c_signal.SIGALRM, _c_signal.SIGCHLD, _c_signal.SIGKILL, _c_signal.SIG_DFL)
_pipe, _fork, _close, _read, _kill, _waitpid, _getpid = os.pipe, os.fork, os.close, os.read, os.kill, os.waitpid, os.getpid
_WNOHANG, _WIFSIGNALED, _WTERMSIG = os.WNOHANG, os.WIFSIGNALED, os.WTERMSIG
_select = select.select
_scan_json = _c_make_scanner(json.JSONDecoder())
# A class's own name, past any ``__name__`` its metaclass defines (the program's code, which may raise).
_class_name = type.__dict__["__name__"].__get__

EXIT = 0  # arc target for "left the frame"


# Beyond an input's time slice, before its process is killed: its own timer did not stop it (the
# program ignored SIGALRM in the call, or a long C call such as ``10 ** 10 ** 8`` held the signal back).
KILL_GRACE_S = 0.5
# Far beyond an entry's size (two reprs of at most 10,000 characters, the lines and arcs of one call).
MAX_ENTRY_BYTES = 16 << 20
# A top level at least this slow runs once per batch, its inputs each in a fork (about 5 ms each on a
# loaded 2-core machine); a faster one runs again before each input.
FORK_ABOVE_S = 0.005


class InputTimeout(BaseException):
    """One input ran past its time slice (BaseException so user ``except Exception`` cannot swallow it)."""


def run_batch(code: types.CodeType, func_name: str, inputs: list[str], per_input_timeout_s: float) -> list[dict]:
    """Inside the child: call ``func_name(<input>)`` for each input, each under a timer; collect arcs.

    Each input sees the program as if traced alone: a mutable default argument or a global that an
    earlier call changed must not decide whether a later input passes. A top level that takes
    ``FORK_ABOVE_S`` or more (a table built at import) runs once and each input runs in a process forked
    from that state, which also keeps apart what a call changes in imported modules; a cheaper one
    (most programs) runs afresh before each input in this process, which costs less than a fork. Where
    ``fork`` fails (the process limit), an input runs afresh too.
    """
    start = _perf_counter()
    try:
        env = _load(code)
    except _BaseException as e:  # every input fails as the program does
        return [_failed(text, _class_name(_type(e))) for text in inputs]
    forked = _perf_counter() - start >= FORK_ABOVE_S
    _setitimer(_ITIMER_REAL, 0)  # an alarm the top level set must not end this process,
    _signal(_SIGCHLD, _SIG_DFL)  # nor its handler for the exits of the inputs' processes
    results = []
    for i, text in _enumerate(inputs):
        entry = _in_fork(env, func_name, text, per_input_timeout_s) if forked else None
        if entry is None:
            try:
                entry = _call(env if i == 0 and not forked else _load(code), func_name, text, per_input_timeout_s)
            except _BaseException as e:
                entry = _failed(text, _class_name(_type(e)))
        results.append(entry)
    return results


def _load(code: types.CodeType) -> dict:
    """The program's namespace after its top level, run with its output discarded (``contextlib.redirect_stdout``'s
    work, which a program's earlier run could have replaced)."""
    env = {"__name__": "__main__", "__builtins__": builtins}
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _StringIO(), _StringIO()
    try:
        _exec(code, env)
    finally:
        sys.stdout, sys.stderr = saved
    return env


def _loads(data: bytearray) -> object:
    """``json.loads(data)`` by ``_json``'s C scanner taken at import (``json.loads`` is the program's to replace);
    ``ValueError`` where ``data`` holds no single JSON value."""
    text = data.decode("utf-8", "surrogatepass").strip(" \t\n\r")
    try:
        value, end = _scan_json(text, 0)
    except _StopIteration:
        raise _ValueError("no JSON value") from None
    if end != _len(text):
        raise _ValueError("extra data after the JSON value")
    return value


def _failed(text: str, exc_type: str | None) -> dict:
    return {"input": text, "ok": False, "exc_type": exc_type, "return_repr": None, "args_repr": None,
            "lines": [], "arcs": []}


def _in_fork(env: dict, func_name: str, text: str, per_input_timeout_s: float) -> dict | None:
    """``_call`` in a forked process that reports on a pipe and is killed once past its time slice and
    ``KILL_GRACE_S``; None if ``fork`` fails. The audit policy lets this function, and only in the
    child itself, fork and kill (a program in a cover job can call it too: what it forks dies with the
    job's process whatever it does, ``child.die_with_parent``). A process that dies without its entry
    fails the input as ``memory`` where a SIGKILL this function did not send ended it (the kernel's OOM
    killer: the memory rlimit holds the whole forked address space, so a ``MemoryError`` comes first
    otherwise), else as ``crashed``."""
    r, w = _pipe()
    parent = _getpid()
    try:
        pid = _fork()
    except _OSError:
        _close(r)
        _close(w)
        return None
    if pid == 0:
        try:
            child.die_with_parent(parent)  # also when this process is killed before it can kill the input's
            guard.confine_forked()
            _close(r)
            child._dup2(w, child.RESULT_FD)  # the guard keeps the program from closing or writing to it
            _close(w)
            child._report(_call(env, func_name, text, per_input_timeout_s))
        finally:
            child._exit(0)
    _close(w)
    data = _bytearray()
    deadline = _monotonic() + per_input_timeout_s + KILL_GRACE_S
    failure = "timeout"
    try:
        while (left := deadline - _monotonic()) > 0 and _select([r], [], [], left)[0]:
            chunk = _read(r, 1 << 16)
            if not chunk:
                failure = "crashed"  # unless the entry came whole
                break
            data += chunk
            if _len(data) > MAX_ENTRY_BYTES:  # the program writes to the channel itself
                failure = "output_limit"
                break
    finally:
        status = _exit_status(pid, deadline) if failure == "crashed" and not data.endswith(b"\n") else None
        if status is None:
            _kill(pid, _SIGKILL)
            _waitpid(pid, 0)
        _close(r)
    try:
        entry = _loads(data)
    except (_ValueError, _RecursionError):
        entry = None
    if not _isinstance(entry, _dict) or entry.get("input") != text:
        if status is not None and _WIFSIGNALED(status) and _WTERMSIG(status) == _SIGKILL:
            failure = "memory"
        return _failed(text, failure)
    return entry


def _exit_status(pid: int, deadline: float) -> int | None:
    """The wait status of ``pid``, which closed its channel without a whole entry and so is most likely
    dying; None (still running) at ``deadline``."""
    while True:
        done, status = _waitpid(pid, _WNOHANG)
        if done:
            return status
        if _monotonic() >= deadline:
            return None
        _sleep(0.001)


def _call(env: dict, func_name: str, text: str, per_input_timeout_s: float) -> dict:
    """The entry of one call ``func_name(<text>)`` in the program's namespace ``env``, under a timer."""
    lines: set[int] = _set()
    arcs: set[tuple[int, int]] = _set()
    prev: dict = {}

    def on_alarm(signum, frame):
        raise InputTimeout()

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
        args, kwargs = _eval(_compile(f"(lambda *a, **k: (a, k))({text})", "<input>", "eval"), env)
        if not kwargs:
            try:
                entry["args_repr"] = _repr(args)[:10_000]
            except _BaseException:
                pass
        func = env[func_name]
        _signal(_SIGALRM, on_alarm)  # after the program, which may have set its own
        _setitimer(_ITIMER_REAL, per_input_timeout_s)
        _settrace(global_trace)
        try:
            value = func(*args, **kwargs)
        finally:
            _settrace(None)
            _setitimer(_ITIMER_REAL, 0)
        entry["ok"] = True
        r = _repr(value)
        entry["return_repr"] = r[:10_000]
    except InputTimeout:
        entry["exc_type"] = "timeout"
    except _BaseException as e:  # the input is rejected, the batch goes on
        entry["exc_type"] = _class_name(_type(e))
    entry["lines"] = _sorted(lines)
    entry["arcs"] = _sorted(arcs)
    return entry


# The code objects the sandbox's audit policy lets fork and kill in a ``cover`` job's child.
TRUSTED_CODE = frozenset({_in_fork.__code__})


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
    clock) is retried one input per child so the other inputs still get a verdict. A failure of the
    sandbox itself (``is_sandbox_failure``: its fork server lost, a child that failed before the program
    ran) is no verdict on the inputs: ``SandboxError``.
    """
    from semcoder_jax.execution.result import is_sandbox_failure
    from semcoder_jax.execution.sandbox import SandboxError, default_sandbox

    def checked(response: dict) -> dict:
        if is_sandbox_failure(response):
            raise SandboxError(f"sandbox failure running {func_name} on inputs: {response.get('exc_message') or 'no message'}")
        return response

    box = sandbox or default_sandbox()
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]

    def job(batch):
        return {"mode": "cover", "source": source, "func_name": func_name, "inputs": batch,
                "per_input_timeout_s": per_input_timeout_s,
                "timeout_s": (per_input_timeout_s + KILL_GRACE_S) * len(batch) + box.config.timeout_s}

    out: list[dict] = []
    for batch, response in zip(batches, box.map_raw(job(b) for b in batches)):
        payload = checked(response).get("payload")
        if isinstance(payload, list) and len(payload) == len(batch):
            out.extend(payload)
            continue
        if len(batch) == 1:
            out.append(_failed(batch[0], response.get("exc_type") or response.get("status")))
            continue
        singles = box.map_raw(job([x]) for x in batch)
        for x, r in zip(batch, singles):
            p = checked(r).get("payload")
            out.extend(p if isinstance(p, list) and len(p) == 1 else [_failed(x, r.get("exc_type") or r.get("status"))])
    return out
