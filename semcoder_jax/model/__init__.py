"""The model: config (``model.config``), Flax decoder (``model.llama``), attention and RoPE.

``Transformer``, ``init_params``, ``apply``, ``logical_axes`` and ``init_cache`` are re-exported
lazily so that importing the config does not start JAX.
"""

_LLAMA_EXPORTS = ("Transformer", "init_params", "apply", "logical_axes", "init_cache")


def __getattr__(name):
    if name in _LLAMA_EXPORTS:
        from semcoder_jax.model import llama

        return getattr(llama, name)
    raise AttributeError(f"module 'semcoder_jax.model' has no attribute {name!r}")
