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


_FORGED_FAILURE = ("import posix\nfrom semcoder_jax.execution import child\nchild._write(99, b'{\"status\": \"killed\", \"exc_type\": \"SandboxError\", "
                   "\"sandbox_failure\": true}\\n')\nposix._exit(0)\n")


def test_a_failed_sandbox_is_an_infrastructure_error_and_a_programs_own_sandbox_error_is_not():
    """A child that failed before the program ran (status error, exc_type SandboxError) rejected the problem
    as ``not_executable``; a program that forged a lost fork server's result had its shard redone forever."""
    import pytest

    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import InfrastructureError, StageContext
    from semcoder_jax.execution import Sandbox

    record = {"id": "p1", "entry_point": "f", "problem": "Double.", "solution": "def f(x):\n    return 2 * x\n", "seed_inputs": ["1"]}
    ctx = StageContext(DataConfig(workers=2))
    try:
        for own in ("class SandboxError(Exception):\n    pass\nraise SandboxError('retry me')\n", _FORGED_FAILURE):
            rejected = executability.process(dict(record, solution=own + record["solution"]), ctx)
            assert rejected.reason == "not_executable" and "SandboxError" in rejected.detail, rejected
        ctx._sandbox = Sandbox(memory_bytes=1 << 30, max_processes="not a number").__enter__()  # every child's setup fails
        with pytest.raises(InfrastructureError, match="setup failed"):
            executability.process(record, ctx)
    finally:
        ctx.close()


def test_a_timed_out_audit_still_compares_the_hash_seeds():
    """Only the audit run timed out: the hash-seed comparison was skipped and the problem, whose result is
    ordered by the hash seed, passed as ``executability.determinism_timeout``."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability
    from data_pipeline.stages.base import StageContext

    solution = "def f(x):\n    return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'})[:x]\n"
    record = {"id": "p1", "entry_point": "f", "problem": "Fruit.", "solution": solution, "seed_inputs": ["6"]}
    ctx = StageContext(DataConfig(workers=2))
    try:
        real = ctx.sandbox.map_raw

        def audit_times_out(jobs, **kw):
            jobs = list(jobs)
            return [{"status": "timeout", "exc_type": None, "exc_message": "timed out"} if j.get("mode") == "audit" else r
                    for j, r in zip(jobs, real(jobs, **kw))]

        ctx.sandbox.map_raw = audit_times_out
        rejected = executability.process(record, ctx)
        assert rejected.reason == "nondeterministic" and "differs between hash seeds" in rejected.detail, rejected
        assert ctx.notes["executability.determinism_timeout"] == 0
    finally:
        ctx.close()
