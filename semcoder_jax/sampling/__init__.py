"""Generation with a KV cache (``Sampler``) and model loading for inference."""

from semcoder_jax.sampling.loading import load_model_for_inference
from semcoder_jax.sampling.sampler import Sampler, sample_logits

__all__ = ["Sampler", "load_model_for_inference", "sample_logits"]
