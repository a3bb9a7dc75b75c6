"""HumanEval(+) / MBPP(+) scoring with EvalPlus's semantics (evalplus.evaluate, evalplus 0.3.1):
expected outputs come from running the reference solution on every input (in the sandbox, cached),
each input gets ``max(min_time_limit, gt_time_limit_factor * t_ref)`` seconds, a solution stops at
its first failing input, floats compare with atol (1e-6 when the task gives 0) after a type and
length check, the special oracles (HumanEval/32 ``find_zero``: |poly(x)| <= atol; MBPP's not-None
and set-equality tasks, Mbpp/164, Mbpp/295, Mbpp/558, Mbpp/581) apply,
and a sample is plus-correct when it passes both base and plus inputs."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Sequence

from eval.benchmarks.evalplus import EvalPlusProblem
from eval.scoring.execute import (
    check_no_sandbox_failure,
    harness_source,
    returned,
    run_jobs,
    sandbox_scope,
)
from semcoder_jax.errors import SemcoderError

GT_SCHEMA = 3
GT_MAX_RETURN_BYTES = 1 << 30
GT_PARTS = 4  # jobs over one task's plus inputs
SPLITS = ("base", "plus")


@dataclasses.dataclass
class EvalPlusSettings:
    min_time_limit: float = 1.0  # evalplus.evaluate's CLI defaults
    gt_time_limit_factor: float = 4.0
    timeout_per_task: float = 60.0  # EVALPLUS_TIMEOUT_PER_TASK
    max_plus_inputs: int | None = None  # the K plus inputs with the shortest repr (quick checks); None = all


@dataclasses.dataclass
class SampleResult:
    base_status: str  # "pass" | "fail" | "timeout"
    plus_status: str | None  # None when base failed (the sample is then not plus-correct) or base_only
    failure: dict | None = None  # first failing input: index, input, expected, output, error

    @property
    def base_pass(self) -> bool:
        return self.base_status == "pass"

    @property
    def plus_pass(self) -> bool:
        return self.base_status == "pass" and self.plus_status == "pass"


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEMCODER_EVAL_CACHE", Path.home() / ".cache" / "semcoder_jax" / "eval"))


def task_dir(cache_dir: Path, p: EvalPlusProblem) -> Path:
    """One folder per task, keyed by everything that determines its expected outputs."""
    h = hashlib.sha256(repr((GT_SCHEMA, p.dataset, p.entry_point, p.prompt, p.canonical_solution, p.base_input, p.plus_input)).encode())
    return cache_dir / "groundtruth" / p.dataset / f"{p.task_id.replace('/', '_')}-{h.hexdigest()[:16]}"


def plus_split(settings: EvalPlusSettings) -> str:
    return "plus" if settings.max_plus_inputs is None else f"plus_sub{settings.max_plus_inputs}"


def split_inputs(p: EvalPlusProblem, split: str) -> list:
    if split == "base":
        return p.base_input
    if split == "plus":
        return p.plus_input
    limit = int(split.removeprefix("plus_sub"))
    return [p.plus_input[i] for i in _plus_subset(p.plus_input, limit)]


def _parts(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``range(n)`` (fewer when n is smaller; one when n is 0)."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return list(zip(bounds, bounds[1:]))


def _merge_parts(values: list[dict]) -> dict:
    """One split's expected outputs and times from its parts' results, in input order."""
    if len(values) == 1:
        return values[0]
    outputs: list[bytes] = []
    for v in values:
        outputs += pickle.loads(zlib.decompress(base64.b64decode(v["expected"])))
    blob = base64.b64encode(zlib.compress(pickle.dumps(outputs), 1)).decode()
    return {"expected": blob, "times": [t for v in values for t in v["times"]]}


def ground_truth(
    problems: Sequence[EvalPlusProblem],
    *,
    splits: Sequence[str] = SPLITS,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Per task a folder with ``{split}.inputs.pkl`` and ``{split}.json`` (``{"expected": base64 of
    zlib of a pickled list of pickled outputs, "times": [...]}``), computed once in the sandbox.

    Plus inputs run in ``GT_PARTS`` jobs a task, so a task whose reference is slow on some inputs
    (Mbpp/599 takes about a minute on one core) spreads over the cores instead of ending last alone.
    """
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    dirs = {p.task_id: task_dir(cache_dir, p) for p in problems}
    todo = [(p, s) for p in problems for s in splits if not (dirs[p.task_id] / f"{s}.json").exists()]
    if not todo:
        return dirs
    harness = harness_source("harness_evalplus")
    jobs, owner, part_files = [], [], []
    for p, split in todo:  # one split per job at least: some reference outputs take gigabytes
        d = dirs[p.task_id]
        d.mkdir(parents=True, exist_ok=True)
        inputs = list(split_inputs(p, split))  # Mbpp/793's plus inputs are an empty dict
        whole = d / f"{split}.inputs.pkl"
        whole.write_bytes(pickle.dumps(inputs))
        code = p.prompt + p.canonical_solution
        parts = _parts(len(inputs), 1 if split == "base" else GT_PARTS)
        for k, (a, b) in enumerate(parts):
            part = whole
            if len(parts) > 1:
                part = d / f"{split}.inputs.part{k}.pkl"
                part.write_bytes(pickle.dumps(inputs[a:b]))
                part_files.append(part)
            jobs.append((harness, f"_evalplus_ground_truth({code!r}, {p.entry_point!r}, {str(part)!r})", 1200.0))
            owner.append((p, split))
    from semcoder_jax.execution import Sandbox

    # Trusted reference code whose outputs can be large: a sandbox without the return-size cap.
    try:
        with Sandbox(max_return_repr=GT_MAX_RETURN_BYTES) as gt_sandbox:
            results = run_jobs(jobs, sandbox=gt_sandbox, progress=progress, desc=f"{problems[0].dataset} ground truth")
    finally:
        for part in part_files:
            part.unlink(missing_ok=True)
    values: dict[tuple[str, str], list[dict]] = {}
    for (p, split), res in zip(owner, results):
        value = returned(res)
        if not isinstance(value, dict):
            raise SemcoderError(
                f"{p.dataset} {p.task_id}: the reference solution failed on its {split} inputs "
                f"({res.status}: {res.exc_type or ''} {res.exc_message or ''})".strip()
            )
        values.setdefault((p.task_id, split), []).append(value)
    for p, split in todo:
        path = dirs[p.task_id] / f"{split}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(_merge_parts(values[(p.task_id, split)])))
        tmp.replace(path)
    return dirs


def _plus_subset(inputs: list, limit: int) -> list[int]:
    """Indices of the ``limit`` smallest inputs (by repr length, then position): a deterministic
    subset that skips the few huge stress inputs, which dominate scoring time."""
    sizes = sorted((len(repr(x)), i) for i, x in enumerate(inputs))
    return sorted(i for _, i in sizes[:limit])


def _limits(times: list[float], settings: EvalPlusSettings) -> list[float]:
    return [max(settings.min_time_limit, settings.gt_time_limit_factor * t) for t in times]


def _job_timeout(limits: list[float], settings: EvalPlusSettings) -> float:
    return min(settings.timeout_per_task, sum(limits)) + 2 + 3  # evalplus's +2, plus process start-up


def _check_job(harness: str, p: EvalPlusProblem, solution: str, splits: Sequence[str], d: Path, times: dict, settings: EvalPlusSettings) -> tuple:
    """One job running ``splits`` in order (each a separate ``untrusted_check``)."""
    timeout = sum(_job_timeout(_limits(times[s], settings), settings) for s in splits)
    paths = [(str(d / f"{s}.inputs.pkl"), str(d / f"{s}.json")) for s in splits]
    call = (
        f"_evalplus_check_splits({solution!r}, {p.entry_point!r}, {p.dataset!r}, {p.atol!r}, {paths!r}, "
        f"{settings.min_time_limit!r}, {settings.gt_time_limit_factor!r})"
    )
    return harness, call, timeout


def _parse(res: Any, n_splits: int) -> list[tuple[str, dict | None]] | None:
    """Per split (status, failure); None when the job died before reporting."""
    values = returned(res)
    if not isinstance(values, list) or not values or not all(isinstance(v, dict) and v.get("status") in ("pass", "fail") for v in values):
        return None
    out = [(v["status"], v.get("failure")) for v in values]
    if len(out) < n_splits and out[-1][0] == "pass":
        return None
    return out


def _died(res: Any) -> tuple[str, dict]:
    """A program that ended without a report fails; a sandbox that failed the job raises instead."""
    check_no_sandbox_failure([res], "evalplus")
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
    unknown = [t for t in solutions if t not in by_id]
    if unknown:
        raise SemcoderError(f"unknown task id(s) for {problems[0].dataset if problems else 'benchmark'}: {', '.join(unknown[:5])}")
    harness = harness_source("harness_evalplus")
    plus = plus_split(settings)
    splits = ("base",) if base_only else ("base", plus)
    dirs = ground_truth([by_id[t] for t in solutions], splits=splits, cache_dir=gt_cache_dir, progress=progress)
    times = {t: {s: json.loads((dirs[t] / f"{s}.json").read_text())["times"] for s in splits} for t in solutions}
    keys = [(t, i) for t, sols in solutions.items() for i in range(len(sols))]
    with sandbox_scope(sandbox) as sb:
        # Fast path: base and plus in one job. A job that dies without reporting (crash, wall-clock
        # kill) is rerun split by split, as EvalPlus runs them, so the outcome per split is exact.
        jobs = [_check_job(harness, by_id[t], solutions[t][i], splits, dirs[t], times[t], settings) for t, i in keys]
        parsed = [_parse(r, len(splits)) for r in run_jobs(jobs, sandbox=sb, progress=progress, desc=f"{by_id[keys[0][0]].dataset} tests" if keys else None)]
        retry = [j for j, v in enumerate(parsed) if v is None]
        if retry:
            base_jobs = [_check_job(harness, by_id[keys[j][0]], solutions[keys[j][0]][keys[j][1]], ("base",), dirs[keys[j][0]], times[keys[j][0]], settings) for j in retry]
            base_res = run_jobs(base_jobs, sandbox=sb)
            plus_todo = []
            for j, r in zip(retry, base_res):
                v = _parse(r, 1)
                parsed[j] = v if v is not None else [_died(r)]
                if not base_only and parsed[j][0][0] == "pass":
                    plus_todo.append(j)
            plus_jobs = [_check_job(harness, by_id[keys[j][0]], solutions[keys[j][0]][keys[j][1]], (plus,), dirs[keys[j][0]], times[keys[j][0]], settings) for j in plus_todo]
            for j, r in zip(plus_todo, run_jobs(plus_jobs, sandbox=sb)):
                v = _parse(r, 1)
                parsed[j] = parsed[j] + (v if v is not None else [_died(r)])
    out: dict[str, list[SampleResult]] = {t: [] for t in solutions}
    for (t, _), v in zip(keys, parsed):
        base_status, base_failure = v[0]
        plus_status, plus_failure = v[1] if len(v) > 1 else (None, None)
        out[t].append(SampleResult(base_status, plus_status, base_failure or plus_failure))
    return out
