"""Our config mapping and decoder against transformers' LlamaConfig / LlamaForCausalLM: every RoPE
and shape variant the mapping accepts gives HF's logits; every one it cannot reproduce is refused."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.config import ConfigError
from semcoder_jax.convert.mapping import param_mappings, set_path
from semcoder_jax.model import llama
from semcoder_jax.model.config import ModelConfig

BASE = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=4096, initializer_range=0.1, bos_token_id=1, eos_token_id=2)
VARIANTS = {
    "default-rope-mha": dict(num_key_value_heads=4, rope_theta=10000.0, rms_norm_eps=1e-5),
    # DeepSeek-Coder's RoPE, with GQA, a head_dim other than hidden / heads, and tied embeddings
    "linear-gqa-head_dim-tied": dict(num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
                                     rope_scaling={"type": "linear", "factor": 4.0}, rope_theta=1e5),
    # transformers 5's spelling, theta inside the dict; one key/value head
    "linear-mqa-rope_parameters": dict(num_key_value_heads=1,
                                       rope_parameters={"rope_type": "linear", "factor": 2.5, "rope_theta": 5e4}),
}


def _hf_model(variant):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**BASE, **VARIANTS[variant])).float().eval()
    with torch.no_grad():  # random norms, so that a swapped or dropped norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _ours(model):
    """Our config from the config.json transformers writes, and params through the conversion table."""
    config = ModelConfig.from_hf_config(json.loads(model.config.to_json_string()), dtype="float32",
                                        param_dtype="float32", remat_policy="none", attention="xla")
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    params: dict = {}
    for m in param_mappings(config):
        slices = [m.to_ours(state[name], config) for name in m.hf_names(config)]
        for name, ours in zip(m.hf_names(config), slices):  # and back, as the export maps it
            assert np.array_equal(m.to_hf(ours, config), state[name]), name
        set_path(params, m.path, np.stack(slices) if m.stacked else slices[0])
    return config, params


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_match_hf_near_and_far_positions(variant):
    """Far positions too: RoPE angles of over a thousand radians round differently unless computed as HF does."""
    import torch

    model = _hf_model(variant)
    config, params = _ours(model)
    hf_rope = model.config.rope_parameters
    assert (config.rope_theta, config.rope_scaling_factor) == (hf_rope["rope_theta"], hf_rope.get("factor"))
    assert config.head_size == model.config.head_dim and config.num_kv_heads == model.config.num_key_value_heads
    assert ("lm_head" in params) != model.config.tie_word_embeddings
    ids = np.random.default_rng(0).integers(0, BASE["vocab_size"], size=(2, 24))
    positions = np.stack([np.arange(24), np.arange(24) + 4000])
    with torch.no_grad():
        want = model(torch.tensor(ids), position_ids=torch.tensor(positions)).logits.numpy()
    got = np.asarray(llama.apply(config, params, jnp.asarray(ids), jnp.asarray(positions)))
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max(axis=(1, 2))


ROPE_FORMS = {
    "legacy-linear": dict(rope_scaling={"type": "linear", "factor": 4.0}, rope_theta=1e5),
    "theta-inside-wins": dict(rope_scaling={"type": "linear", "factor": 2.0, "rope_theta": 5000.0}, rope_theta=1e5),
    "parameters-theta-wins": dict(rope_parameters={"rope_type": "default", "rope_theta": 5000.0}, rope_theta=1e5),
    "no-theta": dict(),
    "null-scaling": dict(rope_scaling=None, rope_theta=3.0),
    "rope_type-over-type": dict(rope_scaling={"type": "default", "rope_type": "linear", "factor": 3.0}),
}


@pytest.mark.parametrize("form", ROPE_FORMS)
def test_rope_theta_and_factor_read_as_transformers_reads_them(form):
    """A rope_theta inside the RoPE dict was overridden by the top-level one, which transformers ignores."""
    from transformers import LlamaConfig

    hf = {**BASE, **ROPE_FORMS[form]}
    want = LlamaConfig.from_dict(json.loads(json.dumps(hf))).rope_parameters
    config = ModelConfig.from_hf_config(hf)
    assert (config.rope_theta, config.rope_scaling_factor) == (want["rope_theta"], want.get("factor"))


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling type 'dynamic' is not supported"),
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192}}, "type 'llama3' is not supported"),
    ({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}}, "'yarn'"),
    ({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "rope_parameters type 'longrope'"),
    ({"rope_scaling": {"type": "linear", "factor": 4.0, "partial_rotary_factor": 0.5}}, "'partial_rotary_factor'"),
    ({"rope_scaling": {"type": "linear", "factor": 4.0, "attention_factor": 2.0}}, "'attention_factor'"),
    ({"rope_scaling": {"type": "linear"}}, "'linear' needs a factor"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}},
     "both rope_scaling and rope_parameters"),
    ({"attention_bias": True}, "attention_bias=True is not supported"),
    ({"mlp_bias": True}, "mlp_bias=True is not supported"),
    ({"attention_dropout": 0.1}, "attention_dropout=0.1 is not supported"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
])
def test_configs_we_cannot_reproduce_are_refused(change, message):
    """Dynamic/YaRN/Llama-3 RoPE, partial rotary, biases and dropout would load as another model."""
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_hf_config({**BASE, **change})


def test_refusal_names_the_config_file(tmp_path):
    from semcoder_jax.convert import read_hf_config
    from semcoder_jax.errors import SemcoderError

    (tmp_path / "config.json").write_text(json.dumps({**BASE, "rope_scaling": {"type": "yarn", "factor": 4.0}}))
    with pytest.raises(SemcoderError, match=rf"{tmp_path / 'config.json'}: rope_scaling type 'yarn' is not supported"):
        read_hf_config(tmp_path)


def test_missing_fields_take_llama_config_defaults():
    """A config.json without bos/eos ids stops at LlamaConfig's eos 2 in transformers and vLLM; ours
    read no EOS at all and generated to max_new_tokens."""
    from transformers import LlamaConfig

    hf = {k: v for k, v in BASE.items() if k not in ("bos_token_id", "eos_token_id", "max_position_embeddings")}
    want = LlamaConfig.from_dict(dict(hf))
    config = ModelConfig.from_hf_config(hf)
    assert (config.bos_token_id, config.eos_token_ids) == (want.bos_token_id, (want.eos_token_id,)) == (1, (2,))
    assert (config.max_position_embeddings, config.rms_norm_eps, config.rope_theta, config.head_size,
            config.num_kv_heads, config.tie_word_embeddings) == (
        want.max_position_embeddings, want.rms_norm_eps, want.rope_parameters["rope_theta"], want.head_dim,
        want.num_key_value_heads, want.tie_word_embeddings)
    assert ModelConfig.from_hf_config({**hf, "eos_token_id": None}).eos_token_ids == ()


def test_unknown_keys_are_refused_on_every_path(tmp_path):
    """``model: path/config.json`` in a train config skipped the converter's unknown-key check: a
    quantised or sliding-window model loaded as a plain LLaMA."""
    from semcoder_jax.model.config import get_model_config

    hf = {**BASE, "sliding_window": 256, "quantization_config": {"bits": 4}}
    with pytest.raises(ConfigError, match="unknown config key.*'quantization_config', 'sliding_window'"):
        ModelConfig.from_hf_config(hf)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'config.json'}: unknown config key"):
        get_model_config(str(tmp_path))


@pytest.mark.slow  # a prefill and a decode loop to compile: about 5 s of CPU
def test_greedy_generation_with_gqa_head_dim_and_tied_embeddings_is_hfs():
    """The KV cache holds key/value heads of head_dim (not hidden / heads) wide."""
    import torch

    from semcoder_jax.sampling import Sampler

    model = _hf_model("linear-gqa-head_dim-tied")
    config, params = _ours(model)
    prompts = [[1, 5, 9, 13, 17], [1] + list(range(40, 51))]
    ids = torch.tensor([[0] * 7 + prompts[0], prompts[1]])
    mask = torch.tensor([[0] * 7 + [1] * 5, [1] * 12])
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        want = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=0)[:, 12:]
    assert Sampler(config, params, chunk_size=8).generate(prompts, max_new_tokens=8, eos_id=-1) == want.tolist()


_DEEPSEEK = {  # the published config.json of deepseek-ai/deepseek-coder-{1.3b,6.7b,33b}-base (transformers 4.33)
    "1.3b": dict(hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16),
    "6.7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "33b": dict(hidden_size=7168, intermediate_size=19200, num_hidden_layers=62, num_attention_heads=56, num_key_value_heads=8),
}
_SAVED_AS = {
    "published": {"pretraining_tp": 1, "rope_scaling": {"factor": 4.0, "type": "linear"}, "rope_theta": 100000,
                  "torch_dtype": "bfloat16", "transformers_version": "4.33.1"},
    # save_pretrained of transformers 4.4x: every LlamaConfig field, both spellings of the RoPE type
    "transformers-4": {"attention_bias": False, "attention_dropout": 0.0, "head_dim": 128, "mlp_bias": False,
                       "pretraining_tp": 1, "rope_scaling": {"factor": 4.0, "rope_type": "linear", "type": "linear"},
                       "rope_theta": 100000.0, "torch_dtype": "bfloat16", "transformers_version": "4.46.3",
                       "_attn_implementation_autoset": True, "output_attentions": False, "return_dict": True},
    # save_pretrained of transformers 5: rope_parameters with the theta inside, dtype
    "transformers-5": {"attention_bias": False, "attention_dropout": 0.0, "head_dim": 128, "mlp_bias": False,
                       "pad_token_id": None, "pretraining_tp": 1, "dtype": "bfloat16", "transformers_version": "5.0.0",
                       "rope_parameters": {"factor": 4.0, "rope_theta": 100000, "rope_type": "linear", "type": "linear"}},
}


@pytest.mark.parametrize("saved_as", _SAVED_AS)
@pytest.mark.parametrize("size", _DEEPSEEK)
def test_deepseek_coder_config_json_as_published_and_as_transformers_saves_it_is_our_preset(size, saved_as, tmp_path):
    """The unknown-key refusal must not refuse the models we train, however transformers wrote their file."""
    import dataclasses

    from semcoder_jax.model.config import get_model_config

    hf = {"_name_or_path": f"deepseek-ai/deepseek-coder-{size}-base", "architectures": ["LlamaForCausalLM"],
          "bos_token_id": 32013, "eos_token_id": 32014, "hidden_act": "silu", "initializer_range": 0.02,
          "max_position_embeddings": 16384, "model_type": "llama", "rms_norm_eps": 1e-06, "tie_word_embeddings": False,
          "use_cache": True, "vocab_size": 32256, **_DEEPSEEK[size], **_SAVED_AS[saved_as]}
    if "head_dim" in hf:
        hf["head_dim"] = hf["hidden_size"] // hf["num_attention_heads"]
    (tmp_path / "config.json").write_text(json.dumps(hf))
    got, want = get_model_config(str(tmp_path)), get_model_config(f"deepseek-coder-{size}")
    assert (got.rope_theta, got.rope_scaling_factor) == (100000.0, 4.0)
    assert dataclasses.replace(got, name=want.name, head_dim=want.head_dim) == want
    # and the export of it reads back the same
    assert ModelConfig.from_hf_config(got.to_hf_config()) == dataclasses.replace(got, name="hf", head_dim=got.head_size)
