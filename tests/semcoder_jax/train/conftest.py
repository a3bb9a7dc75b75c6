"""Tiny-trainer helpers: a 2-layer model with a 512-token vocabulary on 32-token packed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY = (
    "model=tiny",
    "model.vocab_size=512",
    "model.max_position_embeddings=128",
    "data.seq_len=32",
    "data.global_batch_size=8",
    "data.synthetic_rows=32",
    "optimizer.lr=1e-3",
    "optimizer.min_lr=1e-4",
    "optimizer.warmup_steps=2",
    "log_every=1",
    "tensorboard=false",
)


def tiny_config(run_dir: Path | str, *overrides: str):
    from semcoder_jax.train.config import load_train_config

    return load_train_config(None, [*TINY, f"run_dir={run_dir}", *overrides])


def write_tfrecords(path: Path, rows: list[dict[str, np.ndarray]]) -> Path:
    import tensorflow as tf

    from semcoder_jax.packed_schema import serialize_example

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in rows:
            w.write(serialize_example(r))
    return path


@pytest.fixture
def make_config(tmp_path):
    def make(*overrides: str, run: str = "run"):
        return tiny_config(tmp_path / run, *overrides)

    return make


ONE_DEVICE = ("mesh.num_devices=1", "mesh.fsdp=1")
DP_FSDP_TP = ("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2")
FSDP8 = ("mesh.fsdp=8",)
FIVE_STEPS = ("max_steps=5", "checkpoint.every=3")


def train_tiny(cfg, stop_after=None):
    """(losses, params on the host, trainer) after running ``cfg``."""
    import jax

    from semcoder_jax.train.trainer import Trainer

    trainer = Trainer(cfg)
    try:
        records = trainer.run(stop_after=stop_after)
        return [r["loss"] for r in records], jax.device_get(trainer.state["params"]), trainer
    finally:
        trainer.close()


def semcoder_train(config, run_dir, *overrides, env=None, **kw):
    """``semcoder train --config CONFIG run_dir=RUN_DIR ...`` in a subprocess (stdout and stderr piped)."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "semcoder_jax.cli.main", "train", "--config", str(config), f"run_dir={run_dir}", *overrides]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def logged(run_dir: Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` (none before the first log)."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoint_steps(run_dir: Path) -> list[int]:
    ckpt = run_dir / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.exists() else []


@pytest.fixture(scope="session")
def fsdp8_run(tmp_path_factory):
    """The reference: 5 steps on (fsdp 8), checkpoints at steps 3 and 5 in ``run_dir``."""
    run_dir = tmp_path_factory.mktemp("fsdp8")
    losses, params, trainer = train_tiny(tiny_config(run_dir, *FSDP8, *FIVE_STEPS))
    return {"losses": losses, "params": params, "run_dir": run_dir, "mesh": dict(trainer.mesh.shape)}


@pytest.fixture(scope="session")
def one_device_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("one_device")
    losses, params, trainer = train_tiny(tiny_config(run_dir, *ONE_DEVICE, *FIVE_STEPS))
    return {"losses": losses, "params": params, "devices": trainer.mesh.devices.size}


@pytest.fixture(scope="session")
def tiny():
    """The helpers above, for test modules (``--import-mode=importlib`` can't import conftest)."""
    import types

    return types.SimpleNamespace(
        ONE_DEVICE=ONE_DEVICE, DP_FSDP_TP=DP_FSDP_TP, FSDP8=FSDP8, FIVE_STEPS=FIVE_STEPS,
        TINY=TINY, train=train_tiny, config=tiny_config, write_tfrecords=write_tfrecords,
        semcoder_train=semcoder_train, logged=logged, checkpoint_steps=checkpoint_steps,
    )
