"""The paper's benchmarks: loaders returning typed problems, looked up by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semcoder_jax.errors import SemcoderError

DATA_DIR = Path(__file__).resolve().parent / "data"

BENCHMARKS = ("humaneval", "mbpp", "cruxeval-i", "cruxeval-o", "lcb-lite", "lcb-exec")


class BenchmarkError(SemcoderError):
    """A benchmark that cannot be loaded or a name that is not one."""


def check_name(name: str) -> str:
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return name


def load_problems(name: str, *, path: str | Path | None = None, limit: int | None = None, **options: Any) -> list:
    """Problems of benchmark ``name`` in their official order; ``path`` overrides the data file."""
    check_name(name)
    if name in ("humaneval", "mbpp"):
        from eval.benchmarks.evalplus import load_evalplus

        problems = load_evalplus(name, path)
    elif name in ("cruxeval-i", "cruxeval-o"):
        from eval.benchmarks.cruxeval import load_cruxeval

        problems = load_cruxeval(path)
    elif name == "lcb-lite":
        from eval.benchmarks.livecodebench import load_code_generation

        problems = load_code_generation(path, **options)
    else:
        from eval.benchmarks.livecodebench import load_execution

        problems = load_execution(path, **options)
    _check_unique(problems, path or name)
    return problems[:limit] if limit is not None else problems


def _check_unique(problems: list, source: Any) -> None:
    """Problems are keyed by task id from prompts to scores: a repeated id would silently leave
    all but one of its problems out of the run and its counts."""
    seen: set[str] = set()
    for p in problems:
        if p.task_id in seen:
            raise BenchmarkError(f"{source}: task id {p.task_id!r} appears more than once")
        seen.add(p.task_id)
