"""Load a model for generation from a training checkpoint or a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import ModelConfig
from semcoder_jax.model.llama import Params


def default_inference_dtype() -> str:
    """bfloat16 on accelerators, float32 on the CPU (where bf16 matmuls are slow)."""
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"


def load_model_for_inference(
    checkpoint: Optional[str | Path] = None,
    step: Optional[int] = None,
    hf_dir: Optional[str | Path] = None,
    dtype: Optional[str] = None,
) -> tuple[ModelConfig, Params]:
    """(config, params) with params and compute both in ``dtype``, no rematerialisation, and layers
    scanned or unrolled as suits this backend (``scan_layers`` null), whatever the training run chose."""
    if (checkpoint is None) == (hf_dir is None):
        raise SemcoderError("give exactly one of a checkpoint directory or a Hugging Face directory")
    dtype = dtype or default_inference_dtype()
    if checkpoint is not None:
        from semcoder_jax.checkpoint import load_params

        params, config = load_params(str(checkpoint), step, dtype=dtype)
    else:
        from semcoder_jax.convert import load_hf_params

        params, config = load_hf_params(str(hf_dir), dtype=dtype)
    config = config.replace(dtype=dtype, param_dtype=dtype, remat_policy="none", scan_layers=None)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    return config, params
