"""Test inputs: seed inputs (plus LLM-proposed ones) grown by the type-aware mutator.

Keeps inputs whose output is a Python literal that round-trips, so ``assert f(x) == y`` is exact.
Every test is run again under another hash seed (executability checked only the first seed input),
and a problem without seed inputs, which executability could not check for determinism, is checked
here on its first test.
"""

from __future__ import annotations

import ast
from typing import Any

from data_pipeline.stages.base import Reject, StageContext, sandbox_map, record_seed
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
    from semcoder_jax.execution import Job, generate_inputs, measure_coverage

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
    inputset = generate_inputs(
        solution, entry, seeds, n=cfg.num_inputs, coverage_target=cfg.coverage_target,
        seed=record_seed(record["id"], cfg.seed, "inputs") % (2**31), sandbox=ctx.sandbox,
    )
    candidates = list(dict.fromkeys(inputset.inputs))
    jobs = [Job(solution, f"{entry}({a})") for a in candidates]
    results = sandbox_map(ctx, jobs)
    tests, test_jobs = [], []
    for inp, job, res in zip(candidates, jobs, results):
        if res.status == "passed" and literal_output(res.return_repr):
            tests.append({"input": inp, "output": res.return_repr})
            test_jobs.append(job)
        else:
            ctx.note("inputs.dropped_non_literal_or_failing")
    if not tests:
        return Reject("no_valid_inputs")
    # A result ordered by the hash seed (a list made from a set of strings) is no fact about the
    # program; the first seed input may not show it (one word, or numbers).
    again = sandbox_map(ctx, test_jobs, hash_seed=ctx.sandbox.config.hash_seed + 1)
    kept = []
    for test, res in zip(tests, again):
        if res.status == "timeout":  # a busy machine, not the hash seed: the test goes, the problem stays
            ctx.note("inputs.dropped_timeout_on_rerun")
        elif res.status != "passed" or not same_literal(res.return_repr, test["output"]):
            return Reject("nondeterministic", f"{entry}({test['input']}) gives {test['output']} or "
                                              f"{res.return_repr if res.status == 'passed' else res.status} by the hash seed"[:200])
        else:
            kept.append(test)
    if not kept:
        return Reject("no_valid_inputs")
    tests = kept
    if not record.get("seed_inputs"):
        from semcoder_jax.execution import check_determinism

        report = check_determinism(solution, f"{entry}({tests[0]['input']})", sandbox=ctx.sandbox, max_repr=ctx.config.max_repr)
        if not report.deterministic:
            return Reject("nondeterministic", "; ".join(report.reasons)[:200])
    line_cov, branch_cov = measure_coverage(solution, entry, [t["input"] for t in tests], sandbox=ctx.sandbox)
    return [dict(record, tests=tests, line_coverage=round(float(line_cov), 6), branch_coverage=round(float(branch_cov), 6))]
