"""Next-token cross-entropy over response tokens of packed rows, as sums for token weighting."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossSums(NamedTuple):
    """Sums over a (micro-)batch; the step divides by the global ``weight`` once, at the end."""

    loss: jax.Array  # sum of weighted cross-entropy
    z_loss: jax.Array  # sum of weighted logsumexp**2
    weight: jax.Array  # number of target tokens counted

    def __add__(self, other: "LossSums") -> "LossSums":  # type: ignore[override]
        return LossSums(*(a + b for a, b in zip(self, other)))


def target_weights(loss_mask: jax.Array, segment_ids: jax.Array) -> jax.Array:
    """Weight of the target at ``i+1`` predicted from position ``i``: [B, S-1] float32.

    A target counts when it is a response token and lies in the same (non-padding) segment as the
    position that predicts it, so nothing is learned across packed-segment boundaries.
    """
    same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
    return (loss_mask[:, 1:] != 0).astype(jnp.float32) * same.astype(jnp.float32)


def next_token_loss_sums(
    logits: jax.Array,
    input_ids: jax.Array,
    loss_mask: jax.Array,
    segment_ids: jax.Array,
) -> LossSums:
    """Cross-entropy sums from full-row logits [B, S, V] (the last position predicts nothing).

    The logsumexp runs in float32 whatever the logits' dtype.
    """
    logits = logits[:, :-1].astype(jnp.float32)
    targets = input_ids[:, 1:]
    weights = target_weights(loss_mask, segment_ids)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    ce = lse - target_logit
    return LossSums(loss=jnp.sum(ce * weights), z_loss=jnp.sum(jnp.square(lse) * weights), weight=jnp.sum(weights))
