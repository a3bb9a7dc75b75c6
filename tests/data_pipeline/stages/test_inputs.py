"""Input generation: which outputs are kept as test literals."""

import ast

import pytest


@pytest.fixture(scope="module")
def stage_ctx():
    """One sandbox for the tests that need no config of their own."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    ctx = StageContext(DataConfig(workers=2, num_inputs=2))
    yield ctx
    ctx.close()


def test_set_outputs_are_literals_whatever_this_process_hash_seed():
    """The sandbox orders a set's repr by its own hash seed; keeping the test must not depend on ours."""
    from data_pipeline.stages.inputs import literal_output

    words = ["hello", "world", "foo", "bar"]
    other_order = "{" + ", ".join(repr(w) for w in reversed(list(set(words)))) + "}"
    assert other_order != repr(set(words))
    assert literal_output(other_order) and literal_output("frozenset()") is False
    for bad in (None, "inf", "1e309", "<object at 0x1>", "[1, 2"):
        assert not literal_output(bad), bad


def test_a_problem_without_seed_inputs_is_checked_for_determinism_on_its_tests():
    """Executability checks determinism on the first seed input; a problem with none (LLM example calls
    that did not parse) was never checked, and a result ordered by the hash seed became a test."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import inputs
    from data_pipeline.stages.base import StageContext

    class Calls:
        def chat(self, messages, **kw):
            return "f(['apple', 'pear', 'fig', 'kiwi', 'plum'])"

    record = {"id": "p1", "entry_point": "f", "problem": "Distinct words.", "solution": "def f(words):\n    return list(set(words))\n",
              "seed_inputs": []}
    ctx = StageContext(DataConfig(synthesis="llm", workers=2))
    ctx._llm = Calls()
    try:
        assert inputs.process(record, ctx).reason == "nondeterministic"
        (kept,) = inputs.process(dict(record, solution="def f(words):\n    return sorted(set(words))\n"), ctx)
        assert kept["tests"] == [{"input": "['apple', 'pear', 'fig', 'kiwi', 'plum']", "output": "['apple', 'fig', 'kiwi', 'pear', 'plum']"}]
    finally:
        ctx.close()


def test_a_test_whose_result_depends_on_the_hash_seed_rejects_the_problem():
    """Executability checked determinism on the first seed input alone: one word gave one order, and
    the other inputs' hash-ordered lists became tests (and monologues) of this one hash seed. Both
    stages now check every call."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability, inputs
    from data_pipeline.stages.base import StageContext

    words = "['apple', 'pear', 'fig', 'kiwi', 'plum', 'lime', 'date', 'yuzu']"
    record = {"id": "p1", "entry_point": "f", "problem": "Distinct words.", "solution": "def f(words):\n    return list(set(words))\n",
              "seed_inputs": ["['apple']", words]}
    ctx = StageContext(DataConfig(workers=2, num_inputs=2))
    try:
        assert executability.process(record, ctx).detail.startswith(f"f({words}): result differs between hash seeds")
        checked = dict(record, fix_attempts=0)  # as if executability had passed it: this stage checks on its own
        rejected = inputs.process(checked, ctx)
        assert rejected.reason == "nondeterministic" and rejected.detail.startswith(f"f({words}): result differs between hash seeds")
        (kept,) = inputs.process(dict(checked, solution="def f(words):\n    return sorted(set(words))\n"), ctx)
        assert {"input": words, "output": repr(sorted(ast.literal_eval(words)))} in kept["tests"]
    finally:
        ctx.close()


def test_a_test_that_times_out_on_the_rerun_is_dropped_not_blamed_on_the_hash_seed():
    """A rerun's timeout (a busy machine) rejected the whole problem as "nondeterministic ... by the hash seed"."""
    import subprocess
    import sys

    from data_pipeline.config import DataConfig
    from data_pipeline.stages import inputs
    from data_pipeline.stages.base import StageContext

    ctx = StageContext(DataConfig(workers=2, num_inputs=2, exec_timeout_s=1.0))
    try:
        seed = ctx.sandbox.config.hash_seed
        first = subprocess.run([sys.executable, "-c", "print(hash('a'))"], env={"PYTHONHASHSEED": str(seed)},
                               capture_output=True, text=True, check=True).stdout.strip()
        # slow under any other hash seed: the rerun times out, as a test may on a loaded machine
        solution = f"def f(n):\n    while hash('a') != {first}:\n        pass\n    return n + 1\n"
        record = {"id": "p1", "entry_point": "f", "problem": "Add one.", "solution": solution, "seed_inputs": ["1", "2"]}
        assert inputs.process(record, ctx).reason == "no_valid_inputs"
        assert ctx.notes["inputs.dropped_timeout_on_check"] >= 2
    finally:
        ctx.close()


_IDENTITY_ORDER_ABOVE_FIVE = ("class N:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n        return f'N({self.v})'\n"
                "def f(x):\n    if x > 5:\n        s = {N(v) for v in range(x)}\n        return len(s)\n    return x\n")


def test_every_test_call_is_checked_not_only_the_first(stage_ctx):
    """Only a hash-seed rerun (and, without seed inputs, the first test's determinism check) ran: a
    later test whose trace lists a set in object-address order (the same result under both hash seeds) became a test and its output record text."""
    from data_pipeline.stages import inputs

    record = {"id": "p1", "entry_point": "f", "problem": "Count.", "solution": _IDENTITY_ORDER_ABOVE_FIVE, "seed_inputs": ["1", "9"]}
    rejected = inputs.process(record, stage_ctx)
    assert rejected.reason == "nondeterministic" and "differs between runs" in rejected.detail, rejected


def test_a_sandbox_failure_in_the_check_is_an_infrastructure_error(stage_ctx, monkeypatch):
    """The report's sandbox_failure was not looked at: a crashed sandbox rejected the problem as nondeterministic."""
    import pytest

    from data_pipeline.config import DataConfig
    from data_pipeline.stages import inputs
    from data_pipeline.stages.base import InfrastructureError
    from semcoder_jax.execution import determinism

    class Calls:
        def chat(self, messages, **kw):
            return "f(3)"

    def crashed(items, **kw):
        return [determinism.DeterminismReport(False, [], sandbox_failure="fork server died") for _ in items]

    monkeypatch.setattr(determinism, "check_determinism_many", crashed)
    monkeypatch.setattr(stage_ctx, "config", DataConfig(synthesis="llm", workers=2, num_inputs=1))
    monkeypatch.setattr(stage_ctx, "_llm", Calls())
    record = {"id": "p1", "entry_point": "f", "problem": "Double.", "solution": "def f(x):\n    return 2 * x\n", "seed_inputs": []}
    with pytest.raises(InfrastructureError, match="fork server died"):
        inputs.process(record, stage_ctx)


def test_a_sandbox_failure_measuring_coverage_is_an_infrastructure_error(stage_ctx, monkeypatch):
    """run_inputs turned a lost fork server into failing inputs: the problem lost its tests
    (``no_valid_inputs``) or kept a coverage of 0, as if the program had failed."""
    from data_pipeline.stages import inputs
    from data_pipeline.stages.base import InfrastructureError

    real = stage_ctx.sandbox.map_raw

    def lost_cover_runs(jobs, **kw):
        jobs = list(jobs)
        answers = real([j for j in jobs if j.get("mode") != "cover"], **kw)
        return [{"status": "killed", "exc_type": "SandboxError", "exc_message": "fork server lost", "sandbox_failure": True}
                if j.get("mode") == "cover" else answers.pop(0) for j in jobs]

    monkeypatch.setattr(stage_ctx.sandbox, "map_raw", lost_cover_runs)
    record = {"id": "p1", "entry_point": "f", "problem": "Double.", "solution": "def f(x):\n    return 2 * x\n",
              "seed_inputs": ["1", "2"]}
    with pytest.raises(InfrastructureError, match="fork server lost"):
        inputs.process(record, stage_ctx)
