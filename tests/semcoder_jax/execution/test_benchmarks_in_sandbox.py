"""Acceptance on the reference benchmarks: HumanEval canonical solutions pass and corrupted copies do not;
every CRUXEval call traced in the sandbox returns the expected output, identically on a second run."""

import ast
import collections

import pytest

from semcoder_jax.execution import reference_data, render_concise, render_next, render_scratchpad, trace_many


def corrupt(problem: dict) -> str:
    """The canonical body replaced by ``return None``."""
    return "    return None\n"


@pytest.mark.slow
def test_humaneval_canonical_pass_and_corrupted_fail(sandbox):
    problems = reference_data.humaneval()
    assert len(problems) == 164
    good = sandbox.map([reference_data.humaneval_program(p) for p in problems])
    bad = sandbox.map([reference_data.humaneval_program(p, corrupt(p)) for p in problems])
    not_passed = {p["task_id"]: (r.status, r.exc_type, r.exc_message) for p, r in zip(problems, good) if r.status != "passed"}
    assert not not_passed
    still_passing = [p["task_id"] for p, r in zip(problems, bad) if r.status not in ("failed", "error")]
    assert not still_passing
    assert collections.Counter(r.status for r in bad)["failed"] > 100


def _value(text: str):
    return ast.literal_eval(text)


@pytest.mark.slow
def test_cruxeval_traces_return_the_expected_output_deterministically(sandbox):
    problems = reference_data.cruxeval()
    assert len(problems) == 800
    items = [(p["code"], f"f({p['input']})") for p in problems]
    first = trace_many(items, sandbox=sandbox)
    second = trace_many(items, sandbox=sandbox)
    wrong = []
    for p, t1, t2 in zip(problems, first, second):
        if t1.status != "passed" or _value(t1.return_repr) != _value(p["output"]):
            wrong.append((p["id"], t1.status, t1.return_repr, p["output"]))
        for render in (render_scratchpad, render_next, render_concise):
            assert render(p["code"], t1) == render(p["code"], t2), p["id"]
        assert t1.to_json() == t2.to_json(), p["id"]
    assert not wrong, wrong[:5]
    assert sum(len(t.events) for t in first) > 800 * 3
