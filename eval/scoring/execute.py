"""The one door from scoring to the sandbox: batches of (source, call, timeout) jobs."""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from semcoder_jax.execution.result import is_sandbox_failure

HARNESS_DIR = Path(__file__).resolve().parent


def harness_source(name: str) -> str:
    """Text of a harness module in this package, run as a job's source inside the sandbox."""
    return (HARNESS_DIR / f"{name}.py").read_text()


@contextlib.contextmanager
def sandbox_scope(sandbox: Any = None, preload: tuple[str, ...] = ()) -> Iterator[Any]:
    """Use the caller's sandbox, or open one for the duration (with ``preload`` modules imported ahead)."""
    if sandbox is not None:
        yield sandbox
        return
    from semcoder_jax.execution import Sandbox

    with Sandbox(preload=preload) as sb:
        yield sb


def run_jobs(
    jobs: Sequence[tuple[str, str | None, float | None]],
    *,
    sandbox: Any = None,
    progress: bool = False,
    desc: str | None = None,
    preload: tuple[str, ...] = (),
) -> list[Any]:
    """``ExecResult`` per job, in input order. A job the sandbox itself failed (``is_sandbox_failure``: a
    lost fork server, a child that died before the program ran) is run once more; a second such failure
    raises ``SandboxError`` rather than be scored as the program's failure."""
    if not jobs:
        return []
    from semcoder_jax.execution import Job

    with sandbox_scope(sandbox, preload) as sb:
        results = list(sb.map([Job(src, call, timeout) for src, call, timeout in jobs], progress=progress, desc=desc))
        again = [i for i, r in enumerate(results) if is_sandbox_failure(r)]
        if again:
            for i, r in zip(again, sb.map([Job(*jobs[i]) for i in again])):
                results[i] = r
        check_no_sandbox_failure(results, desc)
    return results


def check_no_sandbox_failure(results: Sequence[Any], desc: str | None = None) -> None:
    """Raise ``SandboxError`` naming the first job the sandbox failed: its outcome says nothing of the program."""
    for i, r in enumerate(results):
        if is_sandbox_failure(r):
            from semcoder_jax.execution.sandbox import SandboxError

            raise SandboxError(
                f"{desc or 'scoring'}: job {i} (of {len(results)}) failed in the sandbox, not in the program "
                f"({r.status}: {r.exc_type or ''} {r.exc_message or ''}); no score is recorded for it".replace("  ", " ")
            )


def returned(result: Any) -> Any:
    """The literal a job's call returned, or None when it did not finish cleanly."""
    if result.status != "passed" or result.return_repr is None:
        return None
    try:
        return ast.literal_eval(result.return_repr)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
