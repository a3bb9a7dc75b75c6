"""Training metrics: MFU; writers for stdout, ``metrics.jsonl``, TensorBoard and W&B; a step profiler."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax

from semcoder_jax.train.config import TrainConfig

log = logging.getLogger(__name__)

# Dense bf16 peak TFLOP/s per device, by a substring of ``device.device_kind`` (first match wins).
# A part's name comes before the generic name it contains ("H100 NVL" before "H100", "GH200" before "H200").
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200 NVL", 835.5),  # the 600 W PCIe cards: 1,671 TFLOP/s with 2:4 sparsity
    ("H200", 989.0),
    ("H100 NVL", 835.5),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("v5p", 459.0),
    ("v5 lite", 197.0),
    ("v5e", 197.0),
    ("v5", 459.0),  # v5p reports itself as "TPU v5"
    ("v6", 918.0),
    ("v4", 275.0),
)


WANDB_STEP = "train/step"


def peak_tflops_per_device(device: jax.Device | None = None, override: float | None = None) -> float | None:
    if override:
        return float(override)
    kind = (device or jax.devices()[0]).device_kind
    for key, peak in PEAK_TFLOPS:
        if key.lower() in kind.lower():
            return peak
    return None


def mfu(tokens_per_s: float, flops_per_token: float, num_devices: int, peak_tflops: float | None) -> float | None:
    if not peak_tflops:
        return None
    return tokens_per_s * flops_per_token / (num_devices * peak_tflops * 1e12)


class MetricsWriter:
    """One JSON object per logged step in ``run_dir/metrics.jsonl``, a progress line, TB and W&B."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, is_main: bool = True, resumed_step: int = 0):
        """``resumed_step``: the checkpoint a resumed run starts from. Steps logged after it, by a run
        that died before its next checkpoint, are dropped: they are logged again as the run replays them."""
        self.is_main = is_main
        self.path = run_dir / "metrics.jsonl"
        if is_main:
            drop_steps_after(self.path, resumed_step)
        self._tb = open_tensorboard(run_dir / "tensorboard", resumed_step) if (is_main and cfg.tensorboard) else None
        self._wandb = self._open_wandb(cfg, run_dir) if is_main else None

    def _open_wandb(self, cfg: TrainConfig, run_dir: Path) -> Any:
        """The run's W&B run, by an id kept in ``run_dir``: ``resume="allow"`` resumes only a given id."""
        if not cfg.wandb.project:
            return None
        try:
            import wandb
        except ImportError:
            warnings.warn("wandb.project is set but wandb is not installed; skipping W&B logging")
            return None
        import dataclasses
        import uuid

        id_file = run_dir / "wandb_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:16]
        id_file.write_text(run_id)
        run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity or None, name=cfg.wandb.name or None,
                         tags=list(cfg.wandb.tags) or None, config=dataclasses.asdict(cfg), id=run_id,
                         resume="allow")
        # The train step is a logged metric, the x-axis of every other one, not W&B's own step: W&B
        # drops a step at or below its last, so a resumed run's replayed steps would be lost.
        run.define_metric(WANDB_STEP)
        run.define_metric("*", step_metric=WANDB_STEP)
        return run

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {"step": step, **metrics}
        with open(self.path, "a") as f:
            f.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        print(progress_line(record), file=sys.stdout, flush=True)
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v is not None}
        if self._tb:
            self._tb.write(step, scalars)
        if self._wandb:
            self._wandb.log({**scalars, WANDB_STEP: step})

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        if self._wandb:
            self._wandb.finish()


class TensorBoardWriter:
    """Scalars in a new event file of ``logdir``, written with TensorBoard's own writer (no TensorFlow
    or torch). Its first event is a ``SessionLog.START`` at ``first_step``: TensorBoard drops the
    events at that step and after that earlier files logged, so a resumed run's replayed steps show
    once, with their new values (``metrics.jsonl`` drops them the same way)."""

    def __init__(self, logdir: Path, first_step: int):
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = Event, Summary
        self._writer = EventFileWriter(str(logdir))
        self._writer.add_event(Event(wall_time=time.time(), step=first_step, session_log=SessionLog(status=SessionLog.START)))
        self._writer.flush()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        summary = self._summary(value=[self._summary.Value(tag=k, simple_value=v) for k, v in scalars.items()])
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_tensorboard(logdir: Path, resumed_step: int) -> TensorBoardWriter | None:
    try:
        return TensorBoardWriter(logdir, first_step=resumed_step + 1)
    except ImportError:
        warnings.warn("TensorBoard logging skipped: the tensorboard package is not installed")
        return None


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with NaN and ±inf as null: Python's ``json`` writes them as ``NaN``/``Infinity``,
    which no JSON parser (jq, JavaScript, pandas' ``lines=True`` reader) accepts."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def drop_steps_after(path: Path, step: int) -> None:
    """Keep the records of ``path`` (``metrics.jsonl``) up to ``step``; a line torn by a crash goes too."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    kept = [line for line in lines if _logged_step(line) <= step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)


def _logged_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0


def progress_line(r: dict[str, Any]) -> str:
    parts = [f"step {r['step']}", f"loss {r['loss']:.4f}"]
    for key, fmt in (("eval_loss", "{:.4f}"), ("lr", "{:.3e}"), ("grad_norm", "{:.3f}"), ("tokens_per_s", "{:,.0f}"), ("step_time_s", "{:.3f}s"), ("mfu", "{:.1%}"), ("epoch", "{}")):
        if r.get(key) is not None:
            parts.append(f"{key} " + fmt.format(r[key]))
    return " | ".join(parts)


class StepProfiler:
    """Traces steps ``start .. start + steps - 1`` (1-based; ``start`` 0: none) with ``jax.profiler``."""

    def __init__(self, start: int, steps: int, logdir: Path):
        self.start, self.end, self.logdir = start, start + steps - 1, logdir
        self.active = False

    def before_step(self, step: int) -> None:
        if self.start and step == self.start:
            jax.profiler.start_trace(str(self.logdir))
            self.active = True

    def after_step(self, step: int, outputs: Any) -> None:
        if self.active and step >= self.end:
            jax.block_until_ready(outputs)
            self.stop()

    def stop(self) -> None:
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
            log.info("profile of steps %d-%d written to %s", self.start, self.end, self.logdir)
