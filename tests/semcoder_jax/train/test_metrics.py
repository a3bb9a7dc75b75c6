"""Run outputs besides metrics.jsonl: the progress line and the profile of chosen steps."""

import json
import types

import pytest

from semcoder_jax.train.metrics import peak_tflops_per_device, progress_line


@pytest.mark.parametrize("kind, peak", [("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H100 NVL", 835.5), ("NVIDIA H200 NVL", 835.5), ("NVIDIA GH200 480GB", 989.0),
                                        ("TPU v5", 459.0),
                                        ("TPU v5p", 459.0), ("TPU v5 lite", 197.0), ("TPU v6 lite", 918.0),
                                        ("TPU v4", 275.0), ("cpu", None)])
def test_peak_table_by_device_kind(kind, peak):
    assert peak_tflops_per_device(types.SimpleNamespace(device_kind=kind)) == peak


def test_progress_line_shows_the_validation_loss_when_there_is_one():
    assert progress_line({"step": 4, "loss": 1.23456, "eval_loss": 2.5, "lr": 1e-3}) == \
        "step 4 | loss 1.2346 | eval_loss 2.5000 | lr 1.000e-03"
    assert "eval_loss" not in progress_line({"step": 5, "loss": 1.0})


def test_profile_traces_the_chosen_steps_into_the_run_folder(tiny, make_config, caplog):
    import logging

    cfg = make_config(*tiny.ONE_DEVICE, "max_steps=4", "profile.start_step=2", "profile.steps=2")
    with caplog.at_level(logging.INFO, logger="semcoder_jax.train.trainer"):
        losses, _, trainer = tiny.train(cfg)
    assert len(losses) == 4
    traces = list((trainer.run_dir / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    # the summary logged at the start, before the run's checkpoint: it starts from init_from
    started = trainer.summary().replace("(resumes from its checkpoint at step 4)", "(init_from scratch)")
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("model: ")] == [started]


def test_run_start_summary_states_the_figures_of_the_run(tiny, make_config):
    """Parameter count, mesh, rows, steps and state size, logged before the first step."""
    import jax

    from semcoder_jax.train.trainer import Trainer

    cfg = make_config(*tiny.ONE_DEVICE, "max_steps=2", "data.micro_batches=2", "optimizer.moment_dtype=bfloat16")
    trainer = Trainer(cfg)
    try:
        summary = trainer.summary()
    finally:
        trainer.close()
    n = sum(x.size for x in jax.tree.leaves(trainer.abstract_params))
    assert f"model: {n:,} parameters (2 layers" in summary
    assert "data: <synthetic>: 32 rows of 32 tokens; batch 8 rows (2 micro-batch(es)), 256 tokens a step, 4 steps an epoch" in summary
    assert "schedule: 2 steps; lr 0.001, 1 warm-up steps" in summary
    state_mb = (n * 4 + n * 2 + n * 4) / 1e6  # fp32 weights, bf16 first moment, fp32 second moment (+ counters)
    assert f"state: {state_mb:.1f} MB" in summary


def test_a_finished_run_says_it_resumes_and_has_nothing_to_train(tiny, fsdp8_run, tmp_path, caplog):
    """The start-up summary said "init_from scratch" before a resume, and a finished run's rerun
    exited without a word."""
    import logging
    import shutil

    from semcoder_jax.train.trainer import Trainer

    run_dir = shutil.copytree(fsdp8_run["run_dir"], tmp_path / "run")
    trainer = Trainer(tiny.config(run_dir, *tiny.FSDP8, *tiny.FIVE_STEPS))
    try:
        assert trainer.summary().endswith(f"run folder: {run_dir} (resumes from its checkpoint at step 5)")
        with caplog.at_level(logging.WARNING, logger="semcoder_jax.train.trainer"):
            assert trainer.run() == []
    finally:
        trainer.close()
    assert any("nothing to train: the run folder's checkpoint is at step 5 of a 5-step schedule" in r.getMessage()
               for r in caplog.records)


class _FakeWandb(types.ModuleType):
    """``wandb`` as far as the writer uses it; a run's history outlives ``finish`` (by id), and
    ``log(..., step=N)`` with N at or below the run's last step is dropped, as W&B drops it."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.runs = [], {}

    def init(self, **kw):
        self.inits.append(kw)
        run = self.runs.setdefault(kw["id"], types.SimpleNamespace(history=[], step=-1, axes={}))

        def log(data, step=None):
            if step is not None and step <= run.step:
                return
            run.step = run.step + 1 if step is None else step
            run.history.append(dict(data))

        return types.SimpleNamespace(log=log, finish=lambda: None,
                                     define_metric=lambda name, step_metric=None: run.axes.update({name: step_metric}))


def test_wandb_run_resumes_with_the_run_folder(tmp_path, monkeypatch):
    """A restarted run (pre-emption, requeue) logs on into the same W&B run: ``resume="allow"``
    resumes only a run whose id is given, so the id is kept in the run folder."""
    import sys

    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.metrics import MetricsWriter

    fake = _FakeWandb()
    inits = fake.inits
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = load_train_config(None, ["wandb.project=semcoder", "tensorboard=false"])
    for run_dir in (tmp_path / "a", tmp_path / "a", tmp_path / "b"):
        run_dir.mkdir(exist_ok=True)
        MetricsWriter(cfg, run_dir).close()
    ids = [kw.get("id") for kw in inits]
    assert ids[0] and ids[0] == ids[1] != ids[2] and all(kw["resume"] == "allow" for kw in inits)
    assert MetricsWriter(cfg, tmp_path / "a", is_main=False)._wandb is None and len(inits) == 3


def test_step_time_counts_the_steps_a_checkpoint_waits_for(tiny, make_config):
    """Steps run asynchronously: a save between two logged steps first waits for the steps still
    running, and that wait is their compute time, not checkpoint time to leave out. Each step here
    sleeps on the device, so its time has a floor that a loaded machine can only raise."""
    import time

    import jax
    import jax.numpy as jnp

    from semcoder_jax.train.trainer import Trainer

    floor_s = 0.3

    @jax.jit
    def slow(tree):
        pause = jax.pure_callback(lambda x: (time.sleep(floor_s), x)[1], jax.ShapeDtypeStruct((), jnp.float32),
                                  tree[1]["loss"])
        return jax.tree.map(lambda x: x + (0 * pause).astype(x.dtype), tree)

    trainer = Trainer(make_config(*tiny.ONE_DEVICE, "max_steps=4", "log_every=4", "checkpoint.every=3"))
    step_fn = trainer.step_fn
    trainer.step_fn = lambda state, batch: slow(step_fn(state, batch))
    try:
        (record,) = trainer.run()
    finally:
        trainer.close()
    assert record["step_time_s"] >= floor_s, record  # leaving the save's wait out gives about a third of it


def test_tensorboard_shows_each_replayed_step_once_with_its_new_values(tmp_path):
    """A run killed after logging step 5 resumes from its step-2 checkpoint and logs steps 3..5 again:
    TensorBoard must show each step once, the replay's values winning (as in metrics.jsonl)."""
    import time

    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
    from tensorboard.util.tensor_util import make_ndarray

    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.metrics import MetricsWriter

    cfg = load_train_config(None, ["tensorboard=true"])
    first = MetricsWriter(cfg, tmp_path)
    for step in range(1, 6):
        first.write(step, {"loss": float(step)})
    first.close()
    time.sleep(1.0)  # event files are read in name order, and a name starts with the second it was opened
    resumed = MetricsWriter(cfg, tmp_path, resumed_step=2)
    for step in range(3, 6):
        resumed.write(step, {"loss": 10.0 * step})
    resumed.close()

    expected = [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0), (5, 50.0)]
    # TensorBoard's loader takes a run's first SessionLog.START as its start, and only a later one as a restart.
    loader = plugin_event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    loader.Reload()
    assert [(e.step, float(make_ndarray(e.tensor_proto))) for e in loader.Tensors("loss")] == expected
    legacy = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    legacy.Reload()
    assert [(e.step, e.value) for e in legacy.Scalars("loss")] == expected
    assert [r["step"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3, 4, 5]


def test_wandb_keeps_the_steps_a_resumed_run_replays(tmp_path, monkeypatch):
    """A run killed after logging step 5 resumes from step 2 and logs 3..5 again: W&B drops a
    ``step=`` at or below its last one, so the train step is a metric of its own and the x-axis."""
    import sys

    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.metrics import MetricsWriter

    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = load_train_config(None, ["wandb.project=semcoder", "tensorboard=false"])
    first = MetricsWriter(cfg, tmp_path)
    for step in range(1, 6):
        first.write(step, {"loss": float(step)})
    first.close()
    resumed = MetricsWriter(cfg, tmp_path, resumed_step=2)
    for step in range(3, 6):
        resumed.write(step, {"loss": 10.0 * step})
    resumed.close()
    (run,) = fake.runs.values()
    x = run.axes["*"]
    assert x and x in run.axes
    assert [(r[x], r["loss"]) for r in run.history] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0),
                                                         (3, 30.0), (4, 40.0), (5, 50.0)]


def _strict_json(line: str) -> dict:
    """``json.loads`` without Python's NaN/Infinity extension, as jq or JavaScript read a line."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


def test_metrics_jsonl_writes_non_finite_values_as_null(tmp_path):
    """``json.dumps`` wrote ``NaN`` and ``Infinity``, which JSON parsers refuse."""
    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.metrics import MetricsWriter

    writer = MetricsWriter(load_train_config(None, ["tensorboard=false"]), tmp_path)
    writer.write(1, {"loss": float("nan"), "grad_norm": float("inf"), "lr": 1e-3, "mfu": None})
    writer.close()
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert _strict_json(line) == {"step": 1, "loss": None, "grad_norm": None, "lr": 1e-3, "mfu": None}


@pytest.mark.parametrize("bad, log_every, logged_steps, saved", [
    (4, 1, [1, 2, 3, 4], [3]),  # a logged step: its record is written (loss null), then the run stops
    (2, 4, [], []),  # a step between logs: found before the next checkpoint (step 3), which is not saved
], ids=["logged-step", "unlogged-step"])
def test_a_nan_loss_stops_the_run_naming_the_step_and_saves_no_nan_state(tiny, make_config, bad, log_every,
                                                                         logged_steps, saved):
    import jax.numpy as jnp

    from semcoder_jax.train.trainer import Trainer, TrainingDiverged

    # the step the tests above compiled (4 steps), checkpoints at 3 and 4
    cfg = make_config(*tiny.ONE_DEVICE, "max_steps=4", "checkpoint.every=3", f"log_every={log_every}")
    trainer = Trainer(cfg)
    step_fn, calls = trainer.step_fn, []

    def poisoned(state, batch):
        state, metrics = step_fn(state, batch)
        calls.append(1)
        return state, ({**metrics, "loss": metrics["loss"] * jnp.nan} if len(calls) == bad else metrics)

    trainer.step_fn = poisoned
    try:
        with pytest.raises(TrainingDiverged, match=rf"^step {bad}: the loss is nan and the gradient norm [0-9.]+;") as e:
            trainer.run()
    finally:
        trainer.close()
    assert ("last checkpoint, step 3" in str(e.value)) == bool(saved), str(e.value)
    assert tiny.checkpoint_steps(trainer.run_dir) == saved
    path = trainer.run_dir / "metrics.jsonl"
    records = [_strict_json(line) for line in path.read_text().splitlines()] if path.exists() else []
    assert [r["step"] for r in records] == logged_steps
    assert all((r["loss"] is None) == (r["step"] == bad) for r in records)


def test_tokens_per_s_and_the_non_padding_tokens_per_s(tiny, make_config, tmp_path):
    """``tokens_per_s`` counts every position (MFU's basis); ``nonpad_tokens_per_s`` leaves padding out."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "rows.jsonl"
    with open(path, "w") as f:  # 4 examples of 7 tokens a 32-token row: 28 real tokens, 4 padding
        for _ in range(32):
            f.write(json.dumps({"input_ids": rng.integers(1, 512, 7).tolist(), "loss_mask": [0, 0] + [1] * 5}) + "\n")
    cfg = make_config(f"data.path={path}", *tiny.ONE_DEVICE, "max_steps=4", "checkpoint.every=3", "log_every=4")
    tiny.train(cfg)
    (record,) = tiny.logged(tmp_path / "run")
    assert record["tokens_per_s"] * record["step_time_s"] == pytest.approx(8 * 32)
    assert record["nonpad_tokens_per_s"] * record["step_time_s"] == pytest.approx(8 * 28)
