"""Next-token cross-entropy over response tokens of packed rows, as sums for token weighting.

Two paths compute the same sums: ``next_token_loss_sums`` from full-row logits, and
``head_loss``, which applies the output head itself in sequence chunks so that the
[B, S, V] float32 logits (and their gradient) are never held whole.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

LOGITS_AXES = ("activation_batch", "activation_length", "activation_vocab")


class LossSums(NamedTuple):
    """Sums over a (micro-)batch; the step divides by the global ``weight`` once, at the end."""

    loss: jax.Array  # sum of weighted cross-entropy
    z_loss: jax.Array  # sum of weighted logsumexp**2
    weight: jax.Array  # number of target tokens counted

    def __add__(self, other: "LossSums") -> "LossSums":  # type: ignore[override]
        return LossSums(*(a + b for a, b in zip(self, other)))

    def objective(self, z_loss: float) -> jax.Array:
        """The summed training objective: cross-entropy plus ``z_loss`` times logsumexp²."""
        return self.loss + z_loss * self.z_loss


def target_weights(loss_mask: jax.Array, segment_ids: jax.Array) -> jax.Array:
    """Weight of the target at ``i+1`` predicted from position ``i``: [B, S-1] float32.

    A target counts when it is a response token and lies in the same (non-padding) segment as the
    position that predicts it, so nothing is learned across packed-segment boundaries.
    """
    same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
    return (loss_mask[:, 1:] != 0).astype(jnp.float32) * same.astype(jnp.float32)


def _sums_from_logits(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> tuple[LossSums, jax.Array]:
    """The sums and the float32 logsumexp of ``logits`` [..., V] at integer ``targets`` [...]."""
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    sums = LossSums(loss=jnp.sum((lse - target_logit) * weights), z_loss=jnp.sum(jnp.square(lse) * weights),
                    weight=jnp.sum(weights))
    return sums, lse


def next_token_loss_sums(
    logits: jax.Array,
    input_ids: jax.Array,
    loss_mask: jax.Array,
    segment_ids: jax.Array,
) -> LossSums:
    """Cross-entropy sums from full-row logits [B, S, V] (the last position predicts nothing).

    The logsumexp runs in float32 whatever the logits' dtype.
    """
    return _sums_from_logits(logits[:, :-1], input_ids[:, 1:], target_weights(loss_mask, segment_ids))[0]


# ---- fused output head + cross-entropy ---------------------------------------------------------

def _chunked(x: jax.Array, chunk: int) -> jax.Array:
    """[B, S, ...] -> [S / chunk, B, chunk, ...], the scan's leading axis."""
    b, s = x.shape[:2]
    return x.reshape(b, s // chunk, chunk, *x.shape[2:]).swapaxes(0, 1)


def _unchunked(x: jax.Array) -> jax.Array:
    n, b, c = x.shape[:3]
    return x.swapaxes(0, 1).reshape(b, n * c, *x.shape[3:])


def _chunk_logits(hidden: jax.Array, kernel: jax.Array) -> jax.Array:
    logits = jnp.einsum("bcd,dv->bcv", hidden, kernel, preferred_element_type=jnp.float32)
    return nn.with_logical_constraint(logits, LOGITS_AXES)


def _zero_sums() -> LossSums:
    return LossSums(*(jnp.zeros((), jnp.float32) for _ in LossSums._fields))


def _scan_chunks(body, init, hidden, targets, weights, chunk: int):
    return jax.lax.scan(body, init, (_chunked(hidden, chunk), _chunked(targets, chunk), _chunked(weights, chunk)))


def _head_objective(hidden, kernel, targets, weights, z_loss: float, chunk: int) -> tuple[jax.Array, LossSums]:
    def body(acc, xs):
        x, t, w = xs
        return acc + _sums_from_logits(_chunk_logits(x, kernel), t, w)[0], None

    sums, _ = _scan_chunks(body, _zero_sums(), hidden, targets, weights, chunk)
    return sums.objective(z_loss), sums


def _head_objective_fwd(hidden, kernel, targets, weights, z_loss: float, chunk: int):
    """The outputs and, chunk by chunk, the objective's gradients (per unit cotangent) as residuals.

    d objective / d logits = w · ((1 + 2·z·lse) · softmax − onehot(target)), so the backward
    pass only scales the stored gradients: no chunk's logits are recomputed or kept.
    """

    def body(carry, xs):
        acc, d_kernel = carry
        x, t, w = xs
        logits = _chunk_logits(x, kernel)
        sums, lse = _sums_from_logits(logits, t, w)
        probs = jnp.exp(logits - lse[..., None])
        onehot = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2) == t[..., None]
        d_logits = w[..., None] * ((1.0 + 2.0 * z_loss * lse)[..., None] * probs - onehot)
        d_logits = nn.with_logical_constraint(d_logits.astype(kernel.dtype), LOGITS_AXES)
        d_x = jnp.einsum("bcv,dv->bcd", d_logits, kernel).astype(hidden.dtype)
        d_kernel = d_kernel + jnp.einsum("bcd,bcv->dv", x, d_logits, preferred_element_type=jnp.float32)
        return (acc + sums, d_kernel), d_x

    (sums, d_kernel), d_hidden = _scan_chunks(
        body, (_zero_sums(), jnp.zeros(kernel.shape, jnp.float32)), hidden, targets, weights, chunk
    )
    return (sums.objective(z_loss), sums), (_unchunked(d_hidden), d_kernel.astype(kernel.dtype))


def _head_objective_bwd(z_loss: float, chunk: int, residuals, cotangents):
    """The sums output carries no gradient (``head_loss`` stops it), so only the objective's counts."""
    d_hidden, d_kernel = residuals
    g = cotangents[0]
    scale = lambda d: (g * d.astype(jnp.float32)).astype(d.dtype)  # noqa: E731
    return scale(d_hidden), scale(d_kernel), None, None


_head_objective_vjp = jax.custom_vjp(_head_objective, nondiff_argnums=(4, 5))
_head_objective_vjp.defvjp(_head_objective_fwd, _head_objective_bwd)


def head_loss(
    hidden: jax.Array,
    kernel: jax.Array,
    input_ids: jax.Array,
    loss_mask: jax.Array,
    segment_ids: jax.Array,
    *,
    z_loss: float = 0.0,
    chunk_size: int = 0,
) -> tuple[jax.Array, LossSums]:
    """The objective sum ``loss + z_loss · z_loss_sum`` and the ``LossSums`` of ``hidden @ kernel``,
    as ``next_token_loss_sums`` gives them, without materialising the logits.

    ``hidden`` [B, S, d] are the final-normed hidden states and ``kernel`` [d, V] the output head,
    both in the compute dtype. The logits are made ``chunk_size`` positions at a time (0: the whole
    row at once) with float32 accumulation, and the objective's gradient is computed in the same
    pass. Only the objective is differentiable; the sums are for reporting. A chunk size that does
    not divide the row's length pads the rows up to a multiple of it, with positions that count 0.
    """
    if chunk_size < 0:
        raise ValueError(f"loss chunk size must be >= 0, got {chunk_size}")
    s = hidden.shape[1]
    chunk = min(chunk_size or s, s)
    pad = -s % chunk
    # Position i predicts token i+1; the last position (and any padding) predicts nothing (weight 0).
    targets = jnp.pad(input_ids[:, 1:].astype(jnp.int32), ((0, 0), (0, 1 + pad)))
    weights = jnp.pad(target_weights(loss_mask, segment_ids), ((0, 0), (0, 1 + pad)))
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    objective, sums = _head_objective_vjp(hidden, kernel, targets, weights, float(z_loss), int(chunk))
    return objective, jax.lax.stop_gradient(sums)
