import pytest


@pytest.fixture
def save_tiny_checkpoint():
    """``save(ckpt_dir, step)``: a one-layer model's zero params as a finished checkpoint step."""
    import numpy as np

    from semcoder_jax.checkpoint import save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    def save(ckpt, step: int) -> None:
        config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
        params: dict = {}
        for m in param_mappings(config):
            set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
        save_params(ckpt, step, params, config)

    return save


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An offline HF cache in a temporary folder (``models--org--name/{refs,snapshots}``): the hub is never asked."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_home" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # huggingface_hub reads these at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # no folder named org/name here
    return cache / "models--org--name"
