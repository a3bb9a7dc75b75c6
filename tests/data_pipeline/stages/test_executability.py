"""Executability: which solutions go on to the inputs stage."""


def test_a_solution_whose_trace_is_ordered_by_object_identity_is_rejected():
    """Its result (the set's size) was the same on every run, so it was kept, and the monologue written from
    its trace listed the set of objects in another order on every build."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import StageContext

    node = "class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"
    solution = node + "def count(xs):\n    s = {N(x) for x in xs}\n    return len(s)\n"
    record = {"id": "p1", "entry_point": "count", "problem": "Count nodes.", "solution": solution,
              "seed_inputs": ["[0, 7, 3, 5]"]}
    ctx = StageContext(DataConfig(workers=2))
    try:
        rejected = executability.process(record, ctx)
        assert rejected.reason == "nondeterministic" and "trace of count([0, 7, 3, 5]) differs" in rejected.detail
        by_value = node + "    def __hash__(self):\n        return self.v\n    def __eq__(self, o):\n        return self.v == o.v\n"
        (kept,) = executability.process(dict(record, solution=by_value + solution[len(node):]), ctx)
        assert kept["solution"].startswith(by_value)
    finally:
        ctx.close()


def test_every_seed_call_is_checked_and_a_sandbox_failure_is_no_verdict(monkeypatch):
    """Only the first seed call was checked (a later one whose trace lists a set in object-address order passed), and a crashed
    sandbox (report.sandbox_failure) rejected the problem as nondeterministic."""
    import pytest

    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import InfrastructureError, StageContext
    from semcoder_jax.execution import determinism

    solution = ("class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"
                "def f(x):\n    if x > 5:\n        s = {N(v) for v in range(x)}\n        return len(s)\n    return x\n")
    record = {"id": "p1", "entry_point": "f", "problem": "Count.", "solution": solution, "seed_inputs": ["1", "9"]}
    ctx = StageContext(DataConfig(workers=2))
    try:
        rejected = executability.process(record, ctx)
        assert rejected.reason == "nondeterministic" and rejected.detail.startswith("f(9): trace of f(9) differs"), rejected
        monkeypatch.setattr(determinism, "check_determinism_many", lambda items, **kw: [
            determinism.DeterminismReport(False, [], sandbox_failure="fork server died") for _ in items])
        with pytest.raises(InfrastructureError, match="fork server died"):
            executability.process(dict(record, seed_inputs=["1"]), ctx)
        monkeypatch.setattr(determinism, "check_determinism_many", lambda items, **kw: [
            determinism.DeterminismReport(False, [determinism.TIMED_OUT]) for _ in items])
        (kept,) = executability.process(dict(record, seed_inputs=["1"]), ctx)
        assert kept["solution"] == solution and ctx.notes["executability.determinism_timeout"] == 1
    finally:
        ctx.close()
