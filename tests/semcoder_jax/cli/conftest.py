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
