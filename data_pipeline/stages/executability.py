"""Keep solutions that run in the sandbox, deterministically, without external resources.

A failing solution goes back to the LLM with its error, up to ``fix_attempts`` times (LLM mode).
Every seed call is checked for determinism (``check_determinism_many``): a nondeterministic one rejects
the problem; a check where a run timed out (the audit, either hash seed or a trace) and the comparisons
still possible found nothing is noted ``executability.determinism_timeout`` (the inputs stage checks
every test again and keeps none so checked); a sandbox failure raises ``InfrastructureError``.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from data_pipeline.stages.base import InfrastructureError, Reject, StageContext, code_blocks, sandbox_map

if TYPE_CHECKING:
    from semcoder_jax.execution.determinism import DeterminismReport

# Modules and builtins that reach outside the program (files, network, processes, clock, randomness).
EXTERNAL_MODULES = frozenset(
    "os sys subprocess socket shutil pathlib requests urllib http ftplib smtplib asyncio threading "
    "multiprocessing time datetime random secrets uuid tempfile glob io pickle shelve sqlite3 ctypes "
    "signal select selectors webbrowser tkinter numpy pandas torch".split()
)
EXTERNAL_BUILTINS = frozenset({"open", "input", "eval", "exec", "compile", "__import__", "globals", "breakpoint", "exit", "quit", "id", "hash"})

FIX_PROMPT = """The following Python solution to a programming problem fails when it is run.

[Problem Description]
{problem}

[Solution]
```python
{solution}
```

Running `{call}` gives:
{error}

Fix the solution. Reply with the complete corrected function in one ```python block."""



def external_resources(code: str) -> list[str]:
    """Names of imported modules or builtins that reach outside the program."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names if a.name.split(".")[0] in EXTERNAL_MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in EXTERNAL_MODULES:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in EXTERNAL_BUILTINS:
            found.add(node.func.id)
    return sorted(found)


def checked_calls(solution: str, calls: list[str], ctx: StageContext) -> list["DeterminismReport"]:
    """Determinism reports of ``calls`` on ``solution``, checked concurrently; a sandbox failure
    raises ``InfrastructureError`` (the shard is redone) instead of passing as the program's verdict."""
    from semcoder_jax.execution.determinism import check_determinism_many

    reports = check_determinism_many([(solution, c) for c in calls], sandbox=ctx.sandbox, max_repr=ctx.config.max_repr)
    for call, report in zip(calls, reports):
        if report.sandbox_failure is not None:
            raise InfrastructureError(f"sandbox failure checking {call}: {report.sandbox_failure}")
    return reports


def only_timed_out(report: "DeterminismReport") -> bool:
    """A run of the check timed out and nothing else was found: no verdict on the program (a loaded
    machine), the same rule in every stage (``DeterminismReport.only_timed_out``)."""
    return report.only_timed_out


def _first_failure(solution: str, entry: str, inputs: list[str], ctx: StageContext) -> tuple[str, str] | None:
    """(call, error text) of the first seed call that does not run, or None when all run."""
    from semcoder_jax.execution import Job

    calls = [f"{entry}({a})" for a in inputs] or [None]
    results = sandbox_map(ctx, [Job(solution, c) for c in calls])
    for call, res in zip(calls, results):
        if res.status != "passed":
            err = f"{res.exc_type or res.status}: {res.exc_message or ''}".strip()
            return call or "<module>", err
    return None


def process(record: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    solution, entry = record["solution"], record["entry_point"]
    inputs = record.get("seed_inputs") or []
    attempts = 0
    while True:
        try:
            ext = external_resources(solution)
        except SyntaxError as e:
            ext, failure = [], ("<module>", f"SyntaxError: {e.msg}")
        else:
            failure = None if ext else _first_failure(solution, entry, inputs, ctx)
        if ext:
            return Reject("external_resource", ", ".join(ext))
        if failure is None:
            break
        if ctx.config.synthesis != "llm" or attempts >= ctx.config.fix_attempts:
            return Reject("not_executable", failure[1][:200])
        attempts += 1
        ctx.note("executability.fix_requests")
        reply = ctx.llm.chat([{"role": "user", "content": FIX_PROMPT.format(problem=record["problem"], solution=solution, call=failure[0], error=failure[1])}])
        if reply is None:  # retries ran out or the server refused: not a verdict on the solution
            return Reject("llm_failed", f"no reply to the fix request for {failure[0]}")
        blocks = code_blocks(reply)
        if not blocks:
            return Reject("not_executable", "no fix in LLM reply")
        solution = blocks[0].strip("\n")
    if inputs:
        calls = [f"{entry}({a})" for a in inputs]
        for call, report in zip(calls, checked_calls(solution, calls, ctx)):
            if only_timed_out(report):  # a busy machine: the inputs stage checks every test again
                ctx.note("executability.determinism_timeout")
            elif not report.deterministic:
                return Reject("nondeterministic", f"{call}: {'; '.join(report.reasons)}"[:200])
    out = dict(record, solution=solution, fix_attempts=attempts)
    if attempts:
        out["response"] = f"```python\n{solution}\n```"
        ctx.note("executability.fixed")
    return [out]
