"""Job and result types shared by the sandbox, the tracer and their callers."""

from __future__ import annotations

import dataclasses
from typing import Any

STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed", "output_limit")
# Response key set to True only by the fork server (a job it could not start, a child that failed before the
# program ran) and by ``Sandbox`` (a lost or silent server); the server drops it from what a child reports.
SANDBOX_FAILURE = "sandbox_failure"


@dataclasses.dataclass(frozen=True)
class Job:
    """A program and an optional call expression evaluated after it (its value's repr is returned)."""

    source: str
    call: str | None = None
    timeout_s: float | None = None


@dataclasses.dataclass
class ExecResult:
    """Outcome of one sandboxed run. ``passed``: ran to the end; ``failed``: AssertionError;
    ``error``: any other exception (or an early exit); the rest name the limit that stopped it.
    ``sandbox_failure``: the sandbox, not the program, failed the job (see ``is_sandbox_failure``)."""

    status: str
    return_repr: str | None = None
    stdout: str = ""
    stderr: str = ""
    exc_type: str | None = None
    exc_message: str | None = None
    duration_s: float = 0.0
    sandbox_failure: bool = False
    payload: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("payload")
        return d

    @classmethod
    def from_response(cls, response: dict) -> "ExecResult":
        status = response.get("status")
        if status not in STATUSES:
            status = "error"
        return cls(
            status=status,
            return_repr=response.get("return_repr"),
            stdout=response.get("stdout", ""),
            stderr=response.get("stderr", ""),
            exc_type=response.get("exc_type"),
            exc_message=response.get("exc_message"),
            duration_s=float(response.get("duration_s", 0.0)),
            sandbox_failure=is_sandbox_failure(response),
            payload=response.get("payload"),
        )


def is_sandbox_failure(response: dict | ExecResult) -> bool:
    """Whether the sandbox failed the job, so its outcome is no verdict on the program (the caller should
    retry, not judge). Read from ``SANDBOX_FAILURE`` alone, never from ``exc_type``: a child reports the
    class name of whatever the program raised, and a program may define its own ``SandboxError``."""
    if isinstance(response, ExecResult):
        return response.sandbox_failure
    return response.get(SANDBOX_FAILURE) is True
