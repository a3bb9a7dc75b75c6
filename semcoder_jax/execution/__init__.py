"""Sandboxed execution of untrusted Python, statement-level tracing, input generation and the
determinism filter, shared by ``data_pipeline`` and ``eval``.

Names are imported on first use so that the fork server, which imports ``child`` from this package,
stays small (fork time grows with its memory).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "STATUSES": "result", "ExecResult": "result", "Job": "result", "is_sandbox_failure": "result",
    "Sandbox": "sandbox", "SandboxConfig": "sandbox", "SandboxError": "sandbox", "default_sandbox": "sandbox",
    "run_program": "sandbox",
    "Trace": "tracer", "trace_call": "tracer", "trace_many": "tracer",
    "label_code": "render", "render_concise": "render", "render_exception": "render", "render_next": "render",
    "render_scratchpad": "render", "render_trace": "render",
    "InputSet": "inputgen", "generate_inputs": "inputgen", "mutate_input": "inputgen",
    "function_shape": "coverage", "measure_coverage": "coverage", "run_inputs": "coverage",
    "DeterminismReport": "determinism", "check_determinism": "determinism", "check_determinism_many": "determinism",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__


if TYPE_CHECKING:
    from semcoder_jax.execution.coverage import function_shape, measure_coverage, run_inputs  # noqa: F401
    from semcoder_jax.execution.determinism import (  # noqa: F401
        DeterminismReport, check_determinism, check_determinism_many,
    )
    from semcoder_jax.execution.inputgen import InputSet, generate_inputs, mutate_input  # noqa: F401
    from semcoder_jax.execution.render import (  # noqa: F401
        label_code, render_concise, render_exception, render_next, render_scratchpad, render_trace,
    )
    from semcoder_jax.execution.result import STATUSES, ExecResult, Job, is_sandbox_failure  # noqa: F401
    from semcoder_jax.execution.sandbox import (  # noqa: F401
        Sandbox, SandboxConfig, SandboxError, default_sandbox, run_program,
    )
    from semcoder_jax.execution.tracer import Trace, trace_call, trace_many  # noqa: F401
