"""Pre-emption: a SIGKILL'd run resumes with exactly the uninterrupted losses; SIGTERM saves and exits 0."""

import json
import signal
import time
from pathlib import Path

import pytest

from semcoder_jax.train.trainer import KILL_AT_STEP_ENV


@pytest.mark.slow
def test_sigkill_then_restart_logs_the_uninterrupted_losses(tiny, fsdp8_run, tmp_path):
    config = fsdp8_run["run_dir"] / "config.yaml"  # the reference run's resolved config
    run_dir, xla_cache = tmp_path / "killed", tmp_path / "xla"
    cached = (f"compilation_cache_dir={xla_cache}",)  # the restart runs the steps the first run compiled
    proc = tiny.semcoder_train(config, run_dir, *cached, env={KILL_AT_STEP_ENV: "3", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out
    assert [r["step"] for r in tiny.logged(run_dir)] == [1, 2, 3] and tiny.checkpoint_steps(run_dir) == [3]
    assert any(xla_cache.iterdir())

    proc = tiny.semcoder_train(config, run_dir, *cached)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    logged = tiny.logged(run_dir)
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in logged] == fsdp8_run["losses"]  # exactly, before and after the kill
    assert tiny.checkpoint_steps(run_dir) == [3, 5]


@pytest.mark.slow
def test_sigterm_saves_at_the_step_reached_and_exits_cleanly(tiny, fsdp8_run, tmp_path):
    config = fsdp8_run["run_dir"] / "config.yaml"
    run_dir = tmp_path / "preempted"
    proc = tiny.semcoder_train(config, run_dir, "max_steps=100000", "checkpoint.every=100000")
    deadline = time.time() + 600
    while len(tiny.logged(run_dir)) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    last = tiny.logged(run_dir)[-1]["step"]
    assert 3 <= last < 100000
    assert tiny.checkpoint_steps(run_dir) == [last]
    data_state = json.loads((run_dir / "checkpoints" / str(last) / "data_state" / "metadata").read_text())
    assert data_state["epoch"] * 4 + data_state["batch"] == last  # 32 rows / batch 8 = 4 batches per epoch


def test_resumed_run_logs_each_step_once(tiny, make_config, one_device_run):
    """A run that died after logging step 4 (and part of step 5's line) but saving only step 3:
    the restart replays 4 and 5, and ``metrics.jsonl`` holds each step once, with the losses of an
    uninterrupted run."""
    cfg = make_config(*tiny.ONE_DEVICE, *tiny.FIVE_STEPS)
    run_dir = Path(cfg.run_dir)
    tiny.train(cfg, stop_after=3)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**tiny.logged(run_dir)[-1], "step": 4, "loss": 99.0}) + "\n" + '{"step": 5, "lo')
    losses, _, _ = tiny.train(cfg)
    logged = tiny.logged(run_dir)
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in logged] == one_device_run["losses"]
    assert losses == one_device_run["losses"][3:]
