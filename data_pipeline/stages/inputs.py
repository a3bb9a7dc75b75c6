"""Test inputs: seed inputs (plus LLM-proposed ones) grown by the type-aware mutator.

Keeps inputs whose output is a Python literal that round-trips, so ``assert f(x) == y`` is exact.
Every test's call passes the determinism check (another hash seed, the audit, identity order), since
its output becomes record text: a nondeterministic one rejects the problem, one whose check only
timed out is dropped (``inputs.dropped_timeout_on_check``), a sandbox failure (in any run: inputs,
checks, coverage) raises ``InfrastructureError``.
"""

from __future__ import annotations

import ast
from typing import Any

from data_pipeline.stages.base import InfrastructureError, Reject, StageContext, sandbox_map, record_seed
from data_pipeline.stages.executability import checked_calls, only_timed_out
from data_pipeline.stages.monologue import same_literal
from data_pipeline.stages.synthesis import call_arguments

INPUTS_PROMPT = """Here is a Python function:
```python
{solution}
```
Give 5 diverse example calls of `{entry}` that exercise different branches, one per line, each a call with literal arguments, like `{entry}(...)`. Reply with the calls only."""


def literal_output(return_repr: str | None) -> bool:
    """The repr evaluates to a literal whose own repr evaluates back to the same typed value.

    Compared as values, not text: a set's repr is ordered by the hash seed, which differs between the
    sandbox and this process.
    """
    if return_repr is None:
        return False
    try:
        return same_literal(repr(ast.literal_eval(return_repr)), return_repr)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def process(record: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    from semcoder_jax.execution import Job, SandboxError, generate_inputs, measure_coverage

    cfg = ctx.config
    solution, entry = record["solution"], record["entry_point"]
    seeds = list(record.get("seed_inputs") or [])
    llm_failed = False
    if cfg.synthesis == "llm" or cfg.annotator == "llm":
        reply = ctx.llm.chat([{"role": "user", "content": INPUTS_PROMPT.format(solution=solution, entry=entry)}])
        llm_failed = reply is None
        proposed = [a for a in (call_arguments(ln.strip().strip("`"), entry) for ln in (reply or "").splitlines()) if a is not None]
        ctx.note("inputs.llm_proposed", len(proposed))
        seeds += [p for p in proposed if p not in seeds]
    if not seeds:  # with no reply to ask for inputs, that is the reason, not the problem itself
        return Reject("llm_failed", "no reply to the inputs request") if llm_failed else Reject("no_seed_inputs")
    if llm_failed:  # the record goes on from its own seed inputs: fewer inputs, counted
        ctx.note("inputs.llm_failed")
    try:
        inputset = generate_inputs(
            solution, entry, seeds, n=cfg.num_inputs, coverage_target=cfg.coverage_target,
            seed=record_seed(record["id"], cfg.seed, "inputs") % (2**31), sandbox=ctx.sandbox,
        )
    except SandboxError as e:  # the coverage runs' sandbox failed: no verdict on the inputs
        raise InfrastructureError(str(e)) from e
    candidates = list(dict.fromkeys(inputset.inputs))
    jobs = [Job(solution, f"{entry}({a})") for a in candidates]
    results = sandbox_map(ctx, jobs)
    tests = []
    for inp, res in zip(candidates, results):
        if res.status == "passed" and literal_output(res.return_repr):
            tests.append({"input": inp, "output": res.return_repr})
        else:
            ctx.note("inputs.dropped_non_literal_or_failing")
    if not tests:
        return Reject("no_valid_inputs")
    # Each test's output becomes record text: a result ordered by the hash seed or by object identity,
    # or one read from the clock, is no fact about the program (the seed inputs may not show it).
    kept = []
    for test, report in zip(tests, checked_calls(solution, [f"{entry}({t['input']})" for t in tests], ctx)):
        if only_timed_out(report):  # a busy machine, not the program: the test goes, the problem stays
            ctx.note("inputs.dropped_timeout_on_check")
        elif not report.deterministic:
            return Reject("nondeterministic", f"{entry}({test['input']}): {'; '.join(report.reasons)}"[:200])
        else:
            kept.append(test)
    if not kept:
        return Reject("no_valid_inputs")
    tests = kept
    try:
        line_cov, branch_cov = measure_coverage(solution, entry, [t["input"] for t in tests], sandbox=ctx.sandbox)
    except SandboxError as e:
        raise InfrastructureError(str(e)) from e
    return [dict(record, tests=tests, line_coverage=round(float(line_cov), 6), branch_coverage=round(float(branch_cov), 6))]
