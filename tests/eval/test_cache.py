"""What names a model in the generation cache: checkpoint step, exported weights, tokenizer."""

from eval.backends import BackendConfig, get_backend


def test_checkpoint_identity_names_the_step_loaded_so_newer_steps_are_not_served_from_cache(tmp_path):
    # `--checkpoint DIR` without `--step` loads the newest step: the cache identity must name that step,
    # or evaluating the same folder after more training would reuse the older step's generations.
    import numpy as np

    from eval.backends import model_source, pin_step
    from eval.cache import run_key
    from semcoder_jax.checkpoint import save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["vocab_size=256", "hidden_size=32", "intermediate_size=48"])
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    ckpt = tmp_path / "ckpt"
    save_params(ckpt, 1, params, config)
    first = pin_step(BackendConfig(checkpoint=str(ckpt)))
    assert first.step == 1 and model_source(first).endswith("@1")
    backend = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert backend.identity()["model"] == model_source(first)
    save_params(ckpt, 2, params, config)
    later = get_backend("jax", BackendConfig(checkpoint=str(ckpt), dtype="float32"))
    assert later.identity()["model"].endswith("@2")
    assert run_key(later.identity(), {}) != run_key(backend.identity(), {})
    assert model_source(pin_step(BackendConfig(checkpoint=str(ckpt), step=1))) == model_source(first)


def test_a_model_exported_again_into_the_same_folder_is_another_model(tmp_path):
    import os

    from eval.backends import model_identity

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    weights = hf / "model.safetensors"
    weights.write_bytes(b"a" * 16)
    before = model_identity(BackendConfig(hf_dir=str(hf)))
    assert before["model"] == str(hf)  # results name the folder; the weights only key the cache
    assert model_identity(BackendConfig(hf_dir=str(hf))) == before  # the same files: cached generations apply
    weights.write_bytes(b"b" * 16)
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1_000_000))
    assert model_identity(BackendConfig(hf_dir=str(hf))) != before
    assert model_identity(BackendConfig(hf_dir="deepseek-ai/deepseek-coder-6.7b-base")) == {"model": "deepseek-ai/deepseek-coder-6.7b-base"}


def test_a_different_tokenizer_is_a_different_run_in_the_generation_cache():
    # A rerun with --tokenizer after a run with the wrong (default) one must not be served its generations.
    import types

    from eval.backends import model_identity
    from eval.backends.jax_backend import JaxBackend
    from eval.cache import run_key

    def identity(tokenizer):
        backend = JaxBackend.__new__(JaxBackend)
        backend.config = BackendConfig(checkpoint="/c", step=1, tokenizer=tokenizer)
        backend.source = model_identity(backend.config)
        backend.model_config = types.SimpleNamespace(dtype="bfloat16")
        return backend.identity()

    keys = {run_key(identity(t), {}) for t in (None, "/tok/a", "/tok/b")}
    assert len(keys) == 3
