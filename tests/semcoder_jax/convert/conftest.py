"""Tiny random HF LlamaForCausalLM folders (three variants) and their converted checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

# DeepSeek-Coder's RoPE (theta 1e5, linear factor 4) and norm epsilon, which are also ModelConfig's
# defaults; "mha_untied" takes Llama-2's instead, so a value dropped on the way shows.
DEEPSEEK_ROPE = dict(rms_norm_eps=1e-6, rope_theta=100000.0, rope_scaling={"type": "linear", "factor": 4.0})
VARIANTS = {
    "mha_untied": dict(num_key_value_heads=4, tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=10000.0,
                       rope_scaling=None),
    "gqa": dict(num_key_value_heads=2, tie_word_embeddings=False, **DEEPSEEK_ROPE),
    "tied": dict(num_key_value_heads=4, tie_word_embeddings=True, **DEEPSEEK_ROPE),
}


def make_hf_model(out_dir: Path, variant: str, seed: int = 0, num_layers: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        **VARIANTS[variant],
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at 1.0; make them random so a swapped norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return model


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory) -> dict:
    """variant -> (HF folder, the torch model it holds)."""
    root = tmp_path_factory.mktemp("hf_models")
    return {v: (root / v, make_hf_model(root / v, v, seed=i)) for i, v in enumerate(VARIANTS)}


@pytest.fixture(scope="session")
def orbax_models(hf_models, tmp_path_factory) -> dict:
    """variant -> checkpoint folder written by ``semcoder convert hf-to-orbax``."""
    from semcoder_jax.cli.main import main

    root = tmp_path_factory.mktemp("orbax_models")
    out = {}
    for variant, (hf_dir, _) in hf_models.items():
        assert main(["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(root / variant)]) == 0
        out[variant] = root / variant
    return out
