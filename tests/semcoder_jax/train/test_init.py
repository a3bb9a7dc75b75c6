"""Starting points: an Orbax checkpoint (a training run's step) and a Hugging Face folder."""

import jax
import numpy as np
import pytest

from semcoder_jax.config import ConfigError
from semcoder_jax.train.trainer import Trainer


def _initial_params(cfg):
    trainer = Trainer(cfg)
    try:
        step, state, position = trainer.initial_state()
        assert step == 0 and (position.epoch, position.batch) == (0, 0)
        return jax.device_get(state["params"]), trainer
    finally:
        trainer.close()


def _assert_equal_trees(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_init_from_orbax_and_hf_give_the_checkpoint_params(make_config, fsdp8_run, tmp_path):
    from semcoder_jax.checkpoint import load_params
    from semcoder_jax.convert import orbax_to_hf

    ckpt = fsdp8_run["run_dir"] / "checkpoints"
    expected, _ = load_params(ckpt, 3)
    expected = jax.device_get(expected)
    got, trainer = _initial_params(make_config(f"init_from=orbax:{ckpt}@3", "mesh.data=2", "mesh.fsdp=4", run="from_orbax"))
    _assert_equal_trees(got, expected)
    import shutil

    at_host = shutil.copytree(ckpt, tmp_path / "user@host" / "checkpoints")  # only the last "@N" is a step
    got, _ = _initial_params(make_config(f"init_from=orbax:{at_host}@3", "mesh.fsdp=8", run="from_at"))
    _assert_equal_trees(got, expected)

    hf_dir = orbax_to_hf(ckpt, tmp_path / "hf", step=3, dtype="float32")
    got, trainer = _initial_params(make_config(f"init_from=hf:{hf_dir}", "mesh.fsdp=8", run="from_hf"))
    _assert_equal_trees(got, expected)
    assert (trainer.run_dir / "hf_import").is_dir()

    # The same run folder, started again from another HF folder: that folder's weights, not the import's.
    other = orbax_to_hf(ckpt, tmp_path / "hf5", step=5, dtype="float32")
    got, _ = _initial_params(make_config(f"init_from=hf:{other}", "mesh.fsdp=8", run="from_hf"))
    _assert_equal_trees(got, jax.device_get(load_params(ckpt, 5)[0]))


@pytest.mark.parametrize("overrides, message", [
    (("model.intermediate_size=256", "mesh.fsdp=8"), "intermediate_size is 128 but the train config says 256"),
    # The checkpoint's 2 KV heads do not divide tensor=4: refused before Orbax reads a shard.
    (("model.num_kv_heads=4", "mesh.fsdp=2", "mesh.tensor=4"), "num_kv_heads is 2 but the train config says 4"),
], ids=["shards-fit", "shards-do-not-fit"])
def test_init_from_checkpoint_of_another_architecture_is_refused(make_config, fsdp8_run, overrides, message):
    ckpt = fsdp8_run["run_dir"] / "checkpoints"
    cfg = make_config(f"init_from=orbax:{ckpt}", *overrides, run="mismatch")
    with pytest.raises(ConfigError, match=message):
        _initial_params(cfg)


@pytest.mark.parametrize("override, message", [
    ("model.intermediate_size=96", "model.intermediate_size is 128 but the train config says 96"),
    # the saved data position counts batches of the size it was trained with
    ("data.global_batch_size=16", "data.global_batch_size was 8 but is 16 now.*init_from=orbax:"),
], ids=["architecture", "batch-size"])
def test_resume_with_another_architecture_or_batch_names_the_field(make_config, fsdp8_run, tmp_path, override, message):
    """A run folder whose checkpoints do not fit the config: a ConfigError naming the field and the
    checkpoint, not Orbax's shape error from deep inside the restore, nor a silent jump in the data."""
    import shutil

    run = tmp_path / "run" / "resumed"
    shutil.copytree(fsdp8_run["run_dir"] / "checkpoints", run / "checkpoints")
    trainer = Trainer(make_config(override, "mesh.fsdp=8", run="run/resumed"))
    try:
        with pytest.raises(ConfigError, match=rf"checkpoint .*checkpoints step 5: {message}"):
            trainer.initial_state()
    finally:
        trainer.close()


def test_a_resume_on_another_schedule_or_a_shortened_warmup_says_so(make_config, fsdp8_run, tmp_path, caplog):
    import logging
    import shutil

    run = tmp_path / "run" / "longer"
    shutil.copytree(fsdp8_run["run_dir"] / "checkpoints", run / "checkpoints")
    with caplog.at_level(logging.WARNING, logger="semcoder_jax.train.trainer"):
        trainer = Trainer(make_config("mesh.fsdp=8", "max_steps=2", "optimizer.warmup_steps=4", run="run/longer"))
        trainer.close()
        assert "optimizer.warmup_steps=4 shortened to 1, to end before the last of the run's 2 steps" in caplog.text
        trainer = Trainer(make_config("mesh.fsdp=8", "max_steps=8", run="run/longer"))
        try:
            trainer.initial_state()
        finally:
            trainer.close()
    assert "step 5 was trained on a 5-step schedule; this run's has 8 steps, which the learning rate follows from step 6 on" in caplog.text


@pytest.mark.parametrize("override, message", [
    ("data.global_batch_size=16", "data.global_batch_size was 8 but is 16"),
    # no clipping: an optimiser state of another structure (was Orbax's bare tree-mismatch ValueError)
    ("optimizer.clip_norm=0", r"its optimiser state does not fit .*optimizer.clip_norm.*init_from=orbax:"),
], ids=["batch-size", "clipping"])
def test_a_refused_resume_leaves_the_run_folder_config_as_it_was(make_config, override, message):
    """``run_dir/config.yaml`` records the config the checkpoints were trained with, not one refused."""
    from semcoder_jax.config import save_config
    from semcoder_jax.train.input import DataPosition

    cfg = make_config("mesh.fsdp=8")
    trainer = Trainer(cfg)
    try:
        _, state, _ = trainer.initial_state()
        trainer.save(1, state, DataPosition(0, 1))
        trainer.manager.wait_until_finished()
    finally:
        trainer.close()
    save_config(cfg, trainer.run_dir / "config.yaml")
    before = (trainer.run_dir / "config.yaml").read_text()
    trainer = Trainer(make_config("mesh.fsdp=8", override))
    try:
        with pytest.raises(ConfigError, match=rf"checkpoint .*checkpoints step 1: {message}"):
            trainer.run()
    finally:
        trainer.close()
    assert (trainer.run_dir / "config.yaml").read_text() == before
