"""Hugging Face <-> Orbax conversion of LLaMA-architecture models, streamed layer by layer."""

from semcoder_jax.convert.hf_to_orbax import hf_to_orbax, load_hf_params, read_hf_config
from semcoder_jax.convert.orbax_to_hf import orbax_to_hf

__all__ = ["hf_to_orbax", "load_hf_params", "orbax_to_hf", "read_hf_config"]
