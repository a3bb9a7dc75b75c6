"""Scoring of every benchmark behind one function, with the official harnesses' semantics."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from eval.scoring.passk import mean_pass_at_k, pass_at_k

__all__ = ["Score", "score", "pass_at_k", "mean_pass_at_k"]


@dataclasses.dataclass
class Score:
    benchmark: str
    n_problems: int
    metrics: dict[str, float]  # "pass@k" and, for humaneval/mbpp, "plus_pass@k"; percent
    details: dict[str, list[dict]]  # per task, per sample

    def summary(self) -> dict[str, Any]:
        n = [len(v) for v in self.details.values()]
        return {"benchmark": self.benchmark, "n_problems": self.n_problems, "n_samples": sum(n), **self.metrics}


def score(
    benchmark: str,
    problems: Sequence[Any],
    samples: dict[str, list[str]],
    *,
    sandbox: Any = None,
    progress: bool = False,
    evalplus_settings: Any = None,
    base_only: bool = False,
) -> Score:
    """``samples``: per task id, what the benchmark executes — complete programs for humaneval, mbpp
    and lcb-lite, extracted answers for cruxeval-i/o and lcb-exec."""
    if benchmark in ("humaneval", "mbpp"):
        from eval.scoring.evalplus import score_evalplus

        res = score_evalplus(problems, samples, settings=evalplus_settings, base_only=base_only, sandbox=sandbox, progress=progress)
        metrics = mean_pass_at_k([[r.base_pass for r in rs] for rs in res.values()])
        if not base_only:
            plus = mean_pass_at_k([[r.plus_pass for r in rs] for rs in res.values()])
            metrics.update({f"plus_{k}": v for k, v in plus.items()})
        details = {t: [dataclasses.asdict(r) | {"base_pass": r.base_pass, "plus_pass": r.plus_pass} for r in rs] for t, rs in res.items()}
    elif benchmark in ("cruxeval-i", "cruxeval-o", "lcb-exec"):
        from eval.scoring.execution_prediction import official_results, run_answers

        ran = run_answers(benchmark, problems, samples, sandbox=sandbox, progress=progress)
        generated = min((len(a) for a in samples.values()), default=0) if benchmark.startswith("cruxeval") else None
        metrics = mean_pass_at_k([official_results(benchmark, r) for r in ran.values()], n_samples=generated)
        # One entry per sample, in sample order: the official lists drop skipped answers.
        details = {t: [{"passed": bool(x), "skipped": x is None} for x in rs] for t, rs in ran.items()}
    elif benchmark == "lcb-lite":
        from eval.scoring.livecodebench import score_code_generation

        res = score_code_generation(problems, samples, sandbox=sandbox, progress=progress)
        metrics = mean_pass_at_k([[r["passed"] for r in rs] for rs in res.values()])
        details = res
    else:
        raise ValueError(f"unknown benchmark {benchmark!r}")
    return Score(benchmark, len(samples), metrics, details)
