"""``semcoder train``'s command line (the trainer itself is tested under tests/semcoder_jax/train/)."""

import semcoder_jax.train.trainer as trainer
from semcoder_jax.cli.main import main


def test_a_resumed_train_logs_no_orbax_read_only_warnings(tmp_path, monkeypatch, caplog):
    """Every resume printed Orbax's "Given directory is read only" twice per checkpoint look-up, which
    reads as if the run folder could not be written; generate, convert and eval already hid it."""
    import numpy as np
    from absl import logging as absl_logging

    from semcoder_jax.checkpoint import latest_step, save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    ckpt = tmp_path / "run" / "checkpoints"
    save_params(ckpt, 3, params, config)
    seen = []
    monkeypatch.setattr(trainer, "train", lambda cfg: seen.append(latest_step(ckpt)))  # as a resume looks up its step
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)  # as in a fresh process
    try:
        with caplog.at_level("WARNING"):
            assert main(["train", "--config", "tiny-cpu", f"run_dir={tmp_path / 'run'}"]) == 0
    finally:
        absl_logging.set_verbosity(before)
    assert seen == [3]
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == []
