"""The validation split: stable, by whole problems."""

import pytest
from semcoder_jax.config import ConfigError


def test_validation_problems_are_stable_and_both_splits_nonempty():
    from data_pipeline import splits

    keys = [f"prob-{i:04d}" for i in range(400)]
    held = splits.validation_problems(keys, 0.1, seed=3)
    assert 20 < len(held) < 60 and held == splits.validation_problems(reversed(keys), 0.1, seed=3)
    assert splits.validation_problems(keys + [f"new-{i}" for i in range(100)], 0.1, seed=3) & set(keys) == held  # adding keeps
    assert held < splits.validation_problems(keys, 0.2, seed=3)  # a larger fraction only adds problems
    assert held != splits.validation_problems(keys, 0.1, seed=4)
    assert splits.validation_problems(keys, 0.0, seed=3) == set()
    # Too small a fraction still holds one out; too large still trains on one.
    (smallest,) = splits.validation_problems(["a", "b", "c"], 1e-9, seed=0)
    assert smallest == min("abc", key=lambda k: splits.problem_hash(k, 0))
    assert len(splits.validation_problems(["a", "b", "c"], 0.999999999, seed=0)) == 2
    with pytest.raises(ConfigError, match="validation_fraction"):
        splits.validation_problems(["a"], 0.5, seed=0)


def test_split_assignment_keeps_a_problems_records_together():
    from data_pipeline import splits
    from data_pipeline.stages.format import format_problem

    problems = [{"id": f"prob-{i}", "problem": "P.", "response": "r", "code": "def f(x): return x",
                 "forward": [{"input": "1", "output": "1", "response": "m"}], "backward": [{"input": "2", "output": "2", "response": "m"}],
                 "refine": [{"buggy": "def f(x): return 0", "failed_test": "assert f(1) == 1", "response": "m"}]} for i in range(30)]
    records = [r for p in problems for r in format_problem(p)]
    assert {r["problem_id"] for r in records[:4]} == {"prob-0"} and len(records) == 4 * 30
    split_of = splits.assign(records, 0.3, seed=0)
    assert set(split_of) == {r["id"] for r in records} and set(split_of.values()) == {"train", "validation"}
    by_problem = {}
    for r in records:
        by_problem.setdefault(r["problem_id"], set()).add(split_of[r["id"]])
    assert all(len(s) == 1 for s in by_problem.values())
    released = [{"id": f"pyx-{i:07d}", "kind": "forward"} for i in range(10)]  # no problem_id: each row on its own
    assert splits.problem_key(released[0]) == "pyx-0000000"
    assert set(splits.assign(released, 0.3, seed=0).values()) == {"train", "validation"}
