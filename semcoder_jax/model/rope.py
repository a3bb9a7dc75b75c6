"""Rotary position embeddings in Hugging Face's half-split (``rotate_half``) layout.

With this layout HF q/k weights convert by transposes only (no row permutation).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp


class RopeTables(NamedTuple):
    """cos and sin of every position's angles, [B, S, hd/2] float32: made once, used by every layer."""

    cos: jax.Array
    sin: jax.Array


def inverse_frequencies(head_dim: int, theta: float) -> jax.Array:
    """``1 / theta^(2i/head_dim)`` for i in [0, head_dim/2), float32."""
    return 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))


def rope_tables(
    positions: jax.Array, head_dim: int, *, theta: float, scaling_factor: Optional[float] = None
) -> RopeTables:
    """The tables for ``positions`` [B, S]; linear scaling divides the frequencies (the same as
    dividing the positions), in the order of Hugging Face's float32 operations, so that far
    positions round alike."""
    inv_freq = inverse_frequencies(head_dim, theta)
    if scaling_factor:
        inv_freq = inv_freq / scaling_factor
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return RopeTables(jnp.cos(angles), jnp.sin(angles))


def rotate(x: jax.Array, tables: RopeTables) -> jax.Array:
    """Rotate ``x`` [B, S, H, hd]; computed in float32 and cast back to ``x.dtype``."""
    hd = x.shape[-1]
    cos, sin = tables.cos[:, :, None, :], tables.sin[:, :, None, :]
    x32 = x.astype(jnp.float32)
    x1, x2 = x32[..., : hd // 2], x32[..., hd // 2 :]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def apply_rope(
    x: jax.Array, positions: jax.Array, *, theta: float, scaling_factor: Optional[float] = None
) -> jax.Array:
    """Rotate ``x`` [B, S, H, hd] by ``positions`` [B, S]."""
    return rotate(x, rope_tables(positions, x.shape[-1], theta=theta, scaling_factor=scaling_factor))
