"""LiveCodeBench code generation scoring: lcb_runner's grading (harness_lcb.py) in the sandbox,
one job per program with LCB's global limit ``(timeout + 1) * n_tests + 5`` seconds. As in
lcb_runner's ``get_evaluation_sample``, a problem whose metadata names a ``func_name`` is graded
call-based, whatever its tests' ``testtype``."""

from __future__ import annotations

from typing import Any, Sequence

from eval.benchmarks.livecodebench import LcbGenerationProblem
from eval.scoring.execute import harness_source, returned, run_jobs

TEST_TIMEOUT_S = 6


def extract_code(output: str) -> str:
    """lcb_runner's ``extract_code``: between the last two lines containing a fence; nothing (a
    failed sample) when there are fewer than two, so unfenced text is never graded as code."""
    lines = output.split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return ""
    return "\n".join(lines[fences[-2] + 1 : fences[-1]])


def score_code_generation(
    problems: Sequence[LcbGenerationProblem],
    programs: dict[str, list[str]],
    *,
    timeout: int = TEST_TIMEOUT_S,
    sandbox: Any = None,
    progress: bool = False,
) -> dict[str, list[dict]]:
    """Per task and sample: ``{"passed": bool, "results": [...], "error_message": ...}``."""
    by_id = {p.task_id: p for p in problems}
    harness = harness_source("harness_lcb")
    keys, jobs = [], []
    for t, codes in programs.items():
        p = by_id[t]
        inputs = [c.input for c in p.tests]
        outputs = [c.output for c in p.tests]
        fn = p.func_name
        for i, code in enumerate(codes):
            call = f"_lcb_check(_CODE, _INPUTS, _OUTPUTS, {fn!r}, {timeout})"
            source = f"{harness}\n_CODE = {code!r}\n_INPUTS = {inputs!r}\n_OUTPUTS = {outputs!r}\n"
            jobs.append((source, call, float((timeout + 1) * len(inputs) + 5)))
            keys.append((t, i))
    out: dict[str, list[dict]] = {t: [] for t in programs}
    for (t, _), res in zip(keys, run_jobs(jobs, sandbox=sandbox, progress=progress, desc="lcb tests",
                                                preload=("unittest.mock",))):
        value = returned(res)
        if not isinstance(value, dict):
            value = {"passed": False, "results": [-4], "error_message": f"sandbox: {res.status}"}
        out[t].append(value)
    return out


