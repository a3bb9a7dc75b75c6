"""HumanEval(+) / MBPP(+) scoring with EvalPlus's semantics (evalplus.evaluate, evalplus 0.3.1):
expected outputs come from running the reference solution on every input (in the sandbox, cached),
each input gets ``max(min_time_limit, gt_time_limit_factor * t_ref)`` seconds, a solution stops at
its first failing input, floats compare with atol (1e-6 when the task gives 0), the special oracles
(HumanEval/32 ``find_zero``: |poly(x)| <= atol; MBPP's not-None tasks, Mbpp/164, Mbpp/295) apply,
and a sample is plus-correct when it passes both base and plus inputs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Sequence

from eval.benchmarks.evalplus import EvalPlusProblem
from eval.scoring.execute import harness_source, returned, run_jobs, sandbox_scope
from semcoder_jax.errors import SemcoderError

GT_SCHEMA = 1
GT_MAX_RETURN_BYTES = 1 << 30


@dataclasses.dataclass
class EvalPlusSettings:
    min_time_limit: float = 1.0  # evalplus.evaluate's CLI defaults
    gt_time_limit_factor: float = 4.0
    timeout_per_task: float = 60.0  # EVALPLUS_TIMEOUT_PER_TASK
    max_plus_inputs: int | None = None  # evenly spaced subset of plus inputs (tests); None = all


@dataclasses.dataclass
class SampleResult:
    base_status: str  # "pass" | "fail" | "timeout"
    plus_status: str | None  # None when base failed (then the sample is not plus-correct) or base_only
    failure: dict | None = None  # first failing input: index, input, expected, output, error

    @property
    def base_pass(self) -> bool:
        return self.base_status == "pass"

    @property
    def plus_pass(self) -> bool:
        return self.base_status == "pass" and self.plus_status == "pass"


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEMCODER_EVAL_CACHE", Path.home() / ".cache" / "semcoder_jax" / "eval"))


def _b64pickle(obj: Any) -> str:
    return base64.b64encode(pickle.dumps(obj)).decode()


def ground_truth(
    problems: Sequence[EvalPlusProblem],
    *,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, dict]:
    """``{task_id: {"base": b64, "base_time": [...], "plus": b64, "plus_time": [...]}}``, cached per task."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    out: dict[str, dict] = {}
    todo = []
    for p in problems:
        path = _gt_path(cache_dir, p)
        if path.exists():
            out[p.task_id] = json.loads(path.read_text())
        else:
            todo.append(p)
    if not todo:
        return out
    harness = harness_source("harness_evalplus")
    jobs, keys = [], []
    for p in todo:
        for split in ("base", "plus"):
            payload = _b64pickle({"code": p.prompt + p.canonical_solution, "entry_point": p.entry_point, "inputs": getattr(p, f"{split}_input")})
            jobs.append((f"{harness}\n_PAYLOAD = {payload!r}\n", "_evalplus_ground_truth(_PAYLOAD)", 600.0))
            keys.append((p, split))
    from semcoder_jax.execution import Sandbox

    # Trusted reference code, but its outputs can be large: a sandbox without the return-size cap.
    with Sandbox(max_return_repr=GT_MAX_RETURN_BYTES) as gt_sandbox:
        results = run_jobs(jobs, sandbox=gt_sandbox, progress=progress, desc=f"{todo[0].dataset} ground truth")
    fresh: dict[str, dict] = {}
    for (p, split), res in zip(keys, results):
        value = returned(res)
        if not isinstance(value, dict):
            raise SemcoderError(
                f"{p.dataset} {p.task_id}: the reference solution failed on its {split} inputs "
                f"({res.status}: {res.exc_type or ''} {res.exc_message or ''})".strip()
            )
        fresh.setdefault(p.task_id, {})[split] = value["expected"]
        fresh[p.task_id][f"{split}_time"] = value["times"]
    for p in todo:
        path = _gt_path(cache_dir, p)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(fresh[p.task_id]))
        tmp.replace(path)
    out.update(fresh)
    return out


def _gt_path(cache_dir: Path, p: EvalPlusProblem) -> Path:
    """One file per task, keyed by everything that determines its expected outputs."""
    h = hashlib.sha256(repr((GT_SCHEMA, p.dataset, p.entry_point, p.prompt, p.canonical_solution, p.base_input, p.plus_input)).encode())
    return cache_dir / "groundtruth" / p.dataset / f"{p.task_id.replace('/', '_')}-{h.hexdigest()[:16]}.json"


def _plus_indices(n: int, limit: int | None) -> list[int] | None:
    if limit is None or n <= limit:
        return None
    return sorted({round(i * (n - 1) / max(limit - 1, 1)) for i in range(limit)})


def _check_job(harness: str, p: EvalPlusProblem, solution: str, split: str, gt: dict, settings: EvalPlusSettings) -> tuple:
    inputs = getattr(p, f"{split}_input")
    times = gt[f"{split}_time"]
    indices = _plus_indices(len(inputs), settings.max_plus_inputs) if split == "plus" else None
    if indices is not None:
        inputs = [inputs[i] for i in indices]
        times = [times[i] for i in indices]
    limits = [max(settings.min_time_limit, settings.gt_time_limit_factor * t) for t in times]
    payload = _b64pickle({"code": solution, "entry_point": p.entry_point, "inputs": inputs, "dataset": p.dataset, "atol": p.atol, "time_limits": limits})
    expected = gt[split]
    select = ""
    if indices is not None:
        select = f"import pickle as _pk, base64 as _bs\n_EXPECTED = _bs.b64encode(_pk.dumps([_pk.loads(_bs.b64decode(_EXPECTED))[i] for i in {indices!r}])).decode()\n"
    timeout = min(settings.timeout_per_task, sum(limits)) + 2 + 3  # evalplus's +2, plus process start-up
    source = f"{harness}\n_PAYLOAD = {payload!r}\n_EXPECTED = {expected!r}\n{select}"
    return source, "_evalplus_check(_PAYLOAD, _EXPECTED)", timeout


def _parse(res: Any) -> tuple[str, dict | None]:
    value = returned(res)
    if isinstance(value, dict) and value.get("status") in ("pass", "fail"):
        return value["status"], value.get("failure")
    status = "timeout" if res.status == "timeout" else "fail"
    return status, {"index": None, "error": f"sandbox: {res.status} {res.exc_type or ''} {res.exc_message or ''}".strip()}


def score_evalplus(
    problems: Sequence[EvalPlusProblem],
    solutions: dict[str, list[str]],
    *,
    settings: EvalPlusSettings | None = None,
    base_only: bool = False,
    sandbox: Any = None,
    gt_cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, list[SampleResult]]:
    """Results per task, in sample order. ``solutions`` holds complete programs (prompt included)."""
    settings = settings or EvalPlusSettings()
    by_id = {p.task_id: p for p in problems}
    harness = harness_source("harness_evalplus")
    with sandbox_scope(sandbox) as sb:
        gt = ground_truth([by_id[t] for t in solutions], cache_dir=gt_cache_dir, progress=progress)
        keys = [(t, i) for t, sols in solutions.items() for i in range(len(sols))]
        base_jobs = [_check_job(harness, by_id[t], solutions[t][i], "base", gt[t], settings) for t, i in keys]
        base = [_parse(r) for r in run_jobs(base_jobs, sandbox=sb, progress=progress, desc="base tests")]
        plus: dict[tuple[str, int], tuple[str, dict | None]] = {}
        if not base_only:
            todo = [k for k, (status, _) in zip(keys, base) if status == "pass"]
            plus_jobs = [_check_job(harness, by_id[t], solutions[t][i], "plus", gt[t], settings) for t, i in todo]
            plus = dict(zip(todo, (_parse(r) for r in run_jobs(plus_jobs, sandbox=sb, progress=progress, desc="plus tests"))))
    out: dict[str, list[SampleResult]] = {t: [] for t in solutions}
    for key, (status, failure) in zip(keys, base):
        plus_status, plus_failure = plus.get(key, (None, None))
        out[key[0]].append(SampleResult(status, plus_status, failure or plus_failure))
    return out
