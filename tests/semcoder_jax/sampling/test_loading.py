import numpy as np

from semcoder_jax.checkpoint import save_params
from semcoder_jax.convert.mapping import param_mappings, set_path
from semcoder_jax.model.config import get_model_config
from semcoder_jax.sampling.loading import load_model_for_inference


def test_inference_takes_its_own_runtime_settings_not_the_training_runs(tmp_path):
    """A checkpoint saved with scanned layers and full remat (the old defaults) samples with neither
    forced: on GPU the layers unroll as a new checkpoint's do."""
    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"]).replace(
        scan_layers=True, remat_policy="full")
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    save_params(tmp_path / "ckpt", 1, params, config)
    loaded, _ = load_model_for_inference(checkpoint=tmp_path / "ckpt", dtype="float32")
    assert loaded.scan_layers is None and loaded.remat_policy == "none"
    assert not loaded.scans_layers("gpu") and loaded.scans_layers("cpu")
