"""Job and result types shared by the sandbox, the tracer and their callers."""

from __future__ import annotations

import dataclasses
from typing import Any

STATUSES = ("passed", "failed", "error", "timeout", "memory", "killed", "output_limit")


@dataclasses.dataclass(frozen=True)
class Job:
    """A program and an optional call expression evaluated after it (its value's repr is returned)."""

    source: str
    call: str | None = None
    timeout_s: float | None = None


@dataclasses.dataclass
class ExecResult:
    """Outcome of one sandboxed run. ``passed``: ran to the end; ``failed``: AssertionError;
    ``error``: any other exception (or an early exit); the rest name the limit that stopped it."""

    status: str
    return_repr: str | None = None
    stdout: str = ""
    stderr: str = ""
    exc_type: str | None = None
    exc_message: str | None = None
    duration_s: float = 0.0
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
            payload=response.get("payload"),
        )
