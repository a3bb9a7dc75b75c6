"""Tiny random HF LlamaForCausalLM models and their weights mapped inline to our param tree."""

import numpy as np
import pytest


def hf_to_params(hf_model, tied: bool):
    """HF state dict -> our tree: kernels are HF weights transposed, q/k/v/o reshaped per head."""
    cfg = hf_model.config
    sd = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}
    L, D = cfg.num_hidden_layers, cfg.hidden_size
    H, KV, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim

    def stack(name):
        return np.stack([sd[f"model.layers.{i}.{name}"] for i in range(L)])

    layers = {
        "attn_norm": {"scale": stack("input_layernorm.weight")},
        "mlp_norm": {"scale": stack("post_attention_layernorm.weight")},
        "attn": {
            "q_proj": {"kernel": stack("self_attn.q_proj.weight").transpose(0, 2, 1).reshape(L, D, H, hd)},
            "k_proj": {"kernel": stack("self_attn.k_proj.weight").transpose(0, 2, 1).reshape(L, D, KV, hd)},
            "v_proj": {"kernel": stack("self_attn.v_proj.weight").transpose(0, 2, 1).reshape(L, D, KV, hd)},
            "o_proj": {"kernel": stack("self_attn.o_proj.weight").transpose(0, 2, 1).reshape(L, H, hd, D)},
        },
        "mlp": {n: {"kernel": stack(f"mlp.{n}.weight").transpose(0, 2, 1)} for n in ("gate_proj", "up_proj", "down_proj")},
    }
    params = {"embed": {"embedding": sd["model.embed_tokens.weight"]}, "layers": layers,
              "final_norm": {"scale": sd["model.norm.weight"]}}
    if not tied:
        params["lm_head"] = {"kernel": sd["lm_head.weight"].T}
    return params


def build_hf_llama(*, kv_heads=4, tied=False, vocab=512, layers=2, seed=0, init_std=0.1):
    """A random float32 HF model (RoPE theta 1e5, linear scaling 4.0) and our (config, params)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from semcoder_jax.model.config import ModelConfig

    torch.manual_seed(seed)
    hf_cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=kv_heads, rope_theta=1e5,
        rope_scaling={"type": "linear", "factor": 4.0}, max_position_embeddings=2048,
        tie_word_embeddings=tied, initializer_range=init_std, rms_norm_eps=1e-6,
        bos_token_id=1, eos_token_id=2, attn_implementation="eager",
    )
    model = LlamaForCausalLM(hf_cfg).float().eval()
    with torch.no_grad():  # non-trivial norm weights so that a swapped norm would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    config = ModelConfig(
        name="hf-tiny", vocab_size=vocab, hidden_size=64, intermediate_size=128, num_layers=layers,
        num_heads=4, num_kv_heads=kv_heads, rope_theta=1e5, rope_scaling_factor=4.0,
        max_position_embeddings=2048, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
        dtype="float32", param_dtype="float32", remat_policy="none",
    ).validate()
    return model, config, hf_to_params(model, tied)


@pytest.fixture
def hf_llama():
    return build_hf_llama
