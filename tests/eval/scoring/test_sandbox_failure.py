"""Scoring refuses to judge a program by a job the sandbox itself failed."""

import pytest

from eval.scoring import evalplus
from eval.scoring.execute import run_jobs
from semcoder_jax.execution import ExecResult
from semcoder_jax.execution.sandbox import SandboxError

LOST = {"status": "killed", "exc_type": "SandboxError", "exc_message": "fork server lost", "sandbox_failure": True}


class StandIn:
    """Answers each ``map`` call with the next list of responses, one per job."""

    def __init__(self, *answers: list[dict]):
        self.answers, self.calls = list(answers), []

    def map(self, jobs, progress=False, desc=None):
        self.calls.append([j.source for j in jobs])
        return [ExecResult.from_response(r) for r in self.answers.pop(0)]


def test_a_job_the_sandbox_failed_twice_raises_instead_of_failing():
    box = StandIn([{"status": "passed"}, LOST], [LOST])
    with pytest.raises(SandboxError, match=r"tests: job 1 \(of 2\) failed in the sandbox.*fork server lost"):
        run_jobs([("a", None, 1.0), ("b", None, 1.0)], sandbox=box, desc="tests")
    assert box.calls == [["a", "b"], ["b"]]


def test_a_job_the_sandbox_failed_once_is_run_again_and_scored():
    box = StandIn([LOST, {"status": "failed", "exc_type": "AssertionError"}], [{"status": "passed", "return_repr": "1"}])
    results = run_jobs([("a", None, 1.0), ("b", None, 1.0)], sandbox=box)
    assert [r.status for r in results] == ["passed", "failed"]
    assert box.calls == [["a", "b"], ["a"]]


def test_a_program_raising_its_own_sandbox_error_is_still_a_failure():
    forged = {"status": "error", "exc_type": "SandboxError", "exc_message": "fake", "sandbox_failure": False}
    assert run_jobs([("a", None, 1.0)], sandbox=StandIn([forged]))[0].status == "error"
    assert evalplus._died(ExecResult.from_response(forged))[0] == "fail"


def test_evalplus_does_not_record_a_sandbox_failure_as_fail():
    with pytest.raises(SandboxError, match="failed in the sandbox"):
        evalplus._died(ExecResult.from_response(LOST))
