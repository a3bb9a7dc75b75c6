"""The train step: one ``jax.jit`` with explicit shardings, donated state, and micro-batch scan."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from semcoder_jax.model.config import ModelConfig
from semcoder_jax.packed_schema import FEATURES
from semcoder_jax.train.loss import LossSums, head_loss, next_token_loss_sums, target_weights
from semcoder_jax.train.sharding import Rules, batch_sharding, replicated

State = dict[str, Any]  # {"params": ..., "opt_state": ...}


def mesh_context(mesh: Mesh, rules: Rules, constrain_activations: bool = True) -> contextlib.ExitStack:
    """The mesh and logical-axis rules that the model's activation constraints resolve against.

    Without the mesh, flax's constraints are no-ops and XLA propagates shardings from the inputs.
    """
    stack = contextlib.ExitStack()
    if constrain_activations:
        stack.enter_context(jax.set_mesh(mesh))
    stack.enter_context(nn.logical_axis_rules(rules))
    return stack


def _batch_shardings(mesh: Mesh, rules: Rules) -> dict[str, NamedSharding]:
    return {k: batch_sharding(mesh, rules) for k in FEATURES}


def _llama():
    from semcoder_jax.model import llama

    return llama


def make_loss_fn(
    model_config: ModelConfig, z_loss: float, loss_chunk_size: Optional[int] = None
) -> Callable[..., tuple[jax.Array, LossSums]]:
    """``loss_fn(params, batch, denom)``: the objective's sum over ``batch`` divided by ``denom``.

    ``denom`` is the global batch's number of target tokens, known from the batch alone, so the
    gradient comes out token-weighted over the whole batch without a second pass over it.
    ``loss_chunk_size`` None computes full-row logits; otherwise the output head and the
    cross-entropy are fused, ``loss_chunk_size`` positions at a time (0: whole rows).
    """
    llama = _llama()

    def loss_fn(params: Any, batch: dict[str, jax.Array], denom: jax.Array = 1.0) -> tuple[jax.Array, LossSums]:
        ids, mask, segments = batch["input_ids"], batch["loss_mask"], batch["segment_ids"]
        if loss_chunk_size is None:
            sums = next_token_loss_sums(llama.apply(model_config, params, ids, batch["positions"], segments), ids, mask, segments)
            objective = sums.objective(z_loss)
        else:
            hidden, head = llama.apply_hidden(model_config, params, ids, batch["positions"], segments)
            objective, sums = head_loss(hidden, head, ids, mask, segments, z_loss=z_loss, chunk_size=loss_chunk_size)
        return objective / denom, sums

    return loss_fn


def make_train_step(
    model_config: ModelConfig,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    rules: Rules,
    state_shardings: State,
    *,
    micro_batches: int = 1,
    z_loss: float = 0.0,
    loss_chunk_size: Optional[int] = None,
) -> Callable[[State, dict[str, jax.Array]], tuple[State, dict[str, jax.Array]]]:
    """``step(state, batch) -> (state, metrics)``; the loss is token-weighted over the global batch.

    Micro-batch ``j`` takes rows ``j, j+M, ...`` so every device keeps its own rows; each
    micro-batch's loss sum is divided by the global number of target tokens and the gradients
    summed (not a mean of per-micro-batch means).
    """
    grad_fn = jax.value_and_grad(make_loss_fn(model_config, z_loss, loss_chunk_size), has_aux=True)
    bspec = batch_sharding(mesh, rules).spec
    micro_sharding = NamedSharding(mesh, P(None, *bspec))

    def split(x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0] // micro_batches, micro_batches, *x.shape[1:]).swapaxes(0, 1)
        return jax.lax.with_sharding_constraint(x, micro_sharding)

    def step(state: State, batch: dict[str, jax.Array]) -> tuple[State, dict[str, jax.Array]]:
        params = state["params"]
        denom = jnp.maximum(jnp.sum(target_weights(batch["loss_mask"], batch["segment_ids"])), 1.0)
        if micro_batches == 1:
            (_, sums), grads = grad_fn(params, batch, denom)
        else:
            zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
            zero_sums = LossSums(*(jnp.zeros((), jnp.float32) for _ in range(3)))

            def body(carry, mb):
                g_acc, s_acc = carry
                (_, s), g = grad_fn(params, mb, denom)
                g_acc = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), g_acc, g)
                return (g_acc, s_acc + s), None

            (grads, sums), _ = jax.lax.scan(body, (zeros, zero_sums), jax.tree.map(split, batch))
            grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_state = {"params": optax.apply_updates(params, updates), "opt_state": opt_state}
        metrics = {
            "loss": sums.loss / denom,
            "z_loss": sums.z_loss / denom,
            "target_tokens": sums.weight,
            "tokens": jnp.sum(batch["segment_ids"] != 0),  # positions that are not padding
            "grad_norm": optax.global_norm(grads),  # before clipping
        }
        return new_state, metrics

    data = _batch_shardings(mesh, rules)
    return jax.jit(
        step,
        in_shardings=(state_shardings, data),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=(0,),
    )


def make_eval_step(
    model_config: ModelConfig,
    mesh: Mesh,
    rules: Rules,
    params_shardings: Any,
    *,
    loss_chunk_size: Optional[int] = None,
) -> Callable[[Any, dict[str, jax.Array]], LossSums]:
    """``evaluate(params, batch) -> LossSums``: the cross-entropy sums of a batch, no gradient."""
    loss_fn = make_loss_fn(model_config, 0.0, loss_chunk_size)
    return jax.jit(lambda params, batch: loss_fn(params, batch)[1],
                   in_shardings=(params_shardings, _batch_shardings(mesh, rules)), out_shardings=replicated(mesh))
