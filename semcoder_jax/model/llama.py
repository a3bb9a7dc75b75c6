"""The LLaMA / DeepSeek-Coder decoder in Flax Linen.

Why Linen rather than NNX: ``nn.scan`` + ``nn.remat`` + ``nn.with_logical_partitioning`` give
scanned, rematerialised, logically sharded layers exactly as MaxText builds them, so the
parameter tree is stacked (leading axis = layer), compile time does not grow with depth (when
scanned: ``ModelConfig.scan_layers`` may unroll the same scan), and the trainer maps logical axis
names to mesh axes with ``nn.logical_axis_rules``. NNX's equivalents are newer and less proven for this.

One module serves training (full sequences, packed rows) and generation (a fixed-size KV
cache passed in and returned); both use the same parameter tree.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name

from semcoder_jax.model.attention import (
    RESIDUAL_NAME,
    PackedSegments,
    cached_attention,
    dot_product_attention,
    packed_cudnn_available,
    packed_segments,
)
from semcoder_jax.model.config import ModelConfig
from semcoder_jax.model.rope import RopeTables, rope_tables, rotate

Params = dict[str, Any]
Cache = dict[str, jax.Array]

BATCH_LENGTH_EMBED = ("activation_batch", "activation_length", "activation_embed")


def _dtype(name: str) -> jnp.dtype:
    return jnp.dtype(name)


def _init(config: ModelConfig, axes: tuple[str, ...]):
    return nn.with_logical_partitioning(nn.initializers.normal(config.initializer_range), axes)


def uses_packed_attention(config: ModelConfig) -> bool:
    """Whether full-sequence passes use packed cuDNN attention, which bounds a row's segment runs
    by ``config.max_segments``."""
    return config.attention_kernel() == "cudnn" and config.max_segments > 0 and packed_cudnn_available()


def remat_policy(name: str):
    """The ``jax.checkpoint`` policy for ``ModelConfig.remat_policy`` (None: no remat)."""
    policies = jax.checkpoint_policies
    return {
        "none": None,
        "full": policies.nothing_saveable,
        "save_dots": policies.dots_saveable,
        "save_dots_no_batch": policies.dots_with_no_batch_dims_saveable,
        "save_qkv_proj": policies.save_only_these_names("query_proj", "key_proj", "value_proj"),
        "save_out_proj": policies.save_only_these_names("out_proj"),
        "save_dots_attention": policies.save_from_both_policies(
            policies.dots_saveable, policies.save_only_these_names(RESIDUAL_NAME)
        ),
    }[name]


def segment_positions(segment_ids: jax.Array) -> jax.Array:
    """Positions that restart at 0 at each segment change (padding included), [B, S] int32."""
    s = segment_ids.shape[1]
    idx = jnp.arange(s, dtype=jnp.int32)[None, :]
    starts = jnp.concatenate(
        [jnp.ones_like(segment_ids[:, :1], bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1
    )
    return idx - jax.lax.cummax(jnp.where(starts, idx, 0), axis=1)


class Kernel(nn.Module):
    """A bias-free projection's kernel, stored in its final shape, returned in the compute dtype.

    Storing the final shape keeps the logical-axis metadata equal to the array's (flax's
    ``DenseGeneral`` boxes a flattened kernel, which breaks sharding constraints).
    """

    config: ModelConfig
    shape: tuple[int, ...]
    axes: tuple[str, ...]

    @nn.compact
    def __call__(self) -> jax.Array:
        cfg = self.config
        kernel = self.param("kernel", _init(cfg, self.axes), self.shape, _dtype(cfg.param_dtype))
        return kernel.astype(_dtype(cfg.dtype))


def project(x: jax.Array, kernel: jax.Array, in_ndims: int = 1) -> jax.Array:
    """Contract the last ``in_ndims`` dims of ``x`` with the first of ``kernel`` (compute dtype)."""
    contract = (tuple(range(x.ndim - in_ndims, x.ndim)), tuple(range(in_ndims)))
    return jax.lax.dot_general(x.astype(kernel.dtype), kernel, (contract, ((), ())))


class RMSNorm(nn.Module):
    """RMSNorm computed in float32, output in the compute dtype."""

    eps: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)), (x.shape[-1],), self.param_dtype
        )
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return (y * scale.astype(jnp.float32)).astype(self.dtype)


class LayerInputs(NamedTuple):
    """What every layer reads besides the residual stream, made once per forward pass."""

    rope: RopeTables
    segment_ids: jax.Array
    packed: Optional[PackedSegments]  # for packed cuDNN attention, else None


class Attention(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x, inputs: LayerInputs, layer_cache, cache_segment_ids):
        cfg = self.config
        h, kv, hd, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_size, cfg.hidden_size
        wq = Kernel(cfg, (d, h, hd), ("embed", "q_heads", "head_dim"), name="q_proj")()
        wk = Kernel(cfg, (d, kv, hd), ("embed", "kv_heads", "head_dim"), name="k_proj")()
        wv = Kernel(cfg, (d, kv, hd), ("embed", "kv_heads", "head_dim"), name="v_proj")()
        q = checkpoint_name(project(x, wq), "query_proj")
        k = checkpoint_name(project(x, wk), "key_proj")
        v = checkpoint_name(project(x, wv), "value_proj")
        q = nn.with_logical_constraint(q, ("activation_batch", "activation_length", "activation_heads", "activation_head_dim"))
        kv_axes = ("activation_batch", "activation_length", "activation_kv_heads", "activation_head_dim")
        k = nn.with_logical_constraint(k, kv_axes)
        v = nn.with_logical_constraint(v, kv_axes)
        q = rotate(q, inputs.rope)
        k = rotate(k, inputs.rope)

        if layer_cache is None:
            out = dot_product_attention(
                q, k, v, segment_ids_q=inputs.segment_ids, segment_ids_kv=inputs.segment_ids,
                implementation=cfg.attention_kernel(seq_len=q.shape[1]), packed=inputs.packed,
            )
            new_kv = None
        else:
            cache_k, cache_v = layer_cache
            out = cached_attention(
                q, k, v, cache_k, cache_v, segment_ids_q=inputs.segment_ids, segment_ids_cache=cache_segment_ids
            )
            new_kv = (k.astype(cache_k.dtype), v.astype(cache_v.dtype))
        out = nn.with_logical_constraint(out, ("activation_batch", "activation_length", "activation_heads", "activation_head_dim"))
        wo = Kernel(cfg, (h, hd, d), ("q_heads", "head_dim", "embed"), name="o_proj")()
        return checkpoint_name(project(out, wo, in_ndims=2), "out_proj"), new_kv


class MLP(nn.Module):
    config: ModelConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        d, f = cfg.hidden_size, cfg.intermediate_size
        w_gate = Kernel(cfg, (d, f), ("embed", "mlp"), name="gate_proj")()
        w_up = Kernel(cfg, (d, f), ("embed", "mlp"), name="up_proj")()
        hidden = nn.with_logical_constraint(nn.silu(project(x, w_gate)) * project(x, w_up), ("activation_batch", "activation_length", "activation_mlp"))
        w_down = Kernel(cfg, (f, d), ("mlp", "embed"), name="down_proj")()
        return project(hidden, w_down)


class DecoderLayer(nn.Module):
    """Pre-norm attention + SiLU-gated MLP; scan signature ``(carry, *broadcast) -> (carry, out)``."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x, inputs: LayerInputs, layer_cache, cache_segment_ids):
        cfg = self.config
        dt, pdt = _dtype(cfg.dtype), _dtype(cfg.param_dtype)
        x = nn.with_logical_constraint(x, BATCH_LENGTH_EMBED)
        h = RMSNorm(cfg.rms_norm_eps, dt, pdt, name="attn_norm")(x)
        attn, new_kv = Attention(cfg, name="attn")(h, inputs, layer_cache, cache_segment_ids)
        x = x + attn
        h = RMSNorm(cfg.rms_norm_eps, dt, pdt, name="mlp_norm")(x)
        x = x + MLP(cfg, name="mlp")(h)
        return nn.with_logical_constraint(x, BATCH_LENGTH_EMBED), new_kv


class Transformer(nn.Module):
    """Token ids -> float32 logits; optionally reads and returns a KV cache (see ``init_cache``)."""

    config: ModelConfig

    @nn.compact
    def __call__(
        self,
        input_ids: jax.Array,
        positions: Optional[jax.Array] = None,
        segment_ids: Optional[jax.Array] = None,
        cache: Optional[Cache] = None,
        last_only: bool = False,
        return_hidden: bool = False,
    ):
        """``segment_ids`` 0 marks padding; ``positions`` default to restarting per segment.

        With ``cache`` the new tokens attend to every cached token of their segment and to each
        other causally, and are written at ``cache["index"]``; returns ``(logits, new_cache)``.
        ``last_only`` computes logits for the last position only (generation). ``return_hidden``
        returns the final-normed hidden states instead of logits (see ``output_head``).
        """
        cfg = self.config
        if return_hidden and cache is not None:
            raise ValueError("return_hidden is for full-sequence passes, not with a KV cache")
        dt, pdt = _dtype(cfg.dtype), _dtype(cfg.param_dtype)
        input_ids = input_ids.astype(jnp.int32)
        if segment_ids is None:
            segment_ids = jnp.ones_like(input_ids)
        segment_ids = segment_ids.astype(jnp.int32)
        if positions is None:
            positions = segment_positions(segment_ids)
        positions = positions.astype(jnp.int32)

        # Looked up in the parameter dtype, so that a token's gradients add up in it.
        embed = nn.Embed(
            cfg.vocab_size, cfg.hidden_size, dtype=pdt, param_dtype=pdt,
            embedding_init=_init(cfg, ("vocab", "embed")), name="embed",
        )
        x = embed(input_ids).astype(dt)
        x = nn.with_logical_constraint(x, BATCH_LENGTH_EMBED)
        rope = rope_tables(positions, cfg.head_size, theta=cfg.rope_theta, scaling_factor=cfg.rope_scaling_factor)
        packed = packed_segments(segment_ids, cfg.max_segments) if cache is None and uses_packed_attention(cfg) else None
        inputs = LayerInputs(rope, segment_ids, packed)

        layer_cache = None if cache is None else (cache["k"], cache["v"])
        cache_segment_ids = None if cache is None else cache["segment_ids"]

        layer_cls = DecoderLayer
        policy = remat_policy(cfg.remat_policy)
        if cfg.remat_policy != "none":
            layer_cls = nn.remat(DecoderLayer, policy=policy, prevent_cse=False)
        layers = nn.scan(
            layer_cls,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, 0, nn.broadcast),
            length=cfg.num_layers,
            unroll=cfg.scan_unroll if cfg.scans_layers() else cfg.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, name="layers")
        x, new_kv = layers(x, inputs, layer_cache, cache_segment_ids)

        x = RMSNorm(cfg.rms_norm_eps, dt, pdt, name="final_norm")(x)
        if return_hidden:
            return x
        if last_only:
            x = x[:, -1:]
        if cfg.tie_word_embeddings:
            logits = project(x, embed.embedding.astype(dt).T)
        else:
            logits = project(x, Kernel(cfg, (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"), name="lm_head")())
        logits = nn.with_logical_constraint(logits, ("activation_batch", "activation_length", "activation_vocab"))
        logits = logits.astype(jnp.float32)
        if cache is None:
            return logits
        # One in-place write of the new tokens' k/v for all layers (the cache is never copied).
        index = cache["index"]
        new_cache = {
            "k": jax.lax.dynamic_update_slice(cache["k"], new_kv[0], (0, 0, index, 0, 0)),
            "v": jax.lax.dynamic_update_slice(cache["v"], new_kv[1], (0, 0, index, 0, 0)),
            "segment_ids": jax.lax.dynamic_update_slice(cache["segment_ids"], segment_ids, (0, index)),
            "index": index + input_ids.shape[1],
        }
        return logits, new_cache


def init_cache(config: ModelConfig, batch_size: int, max_length: int, dtype: Any = None) -> Cache:
    """An empty KV cache: k, v [L, B, T, KV, hd], segment_ids [B, T] (0 = empty), index 0."""
    shape = (config.num_layers, batch_size, max_length, config.num_kv_heads, config.head_size)
    dt = _dtype(dtype or config.dtype)
    return {
        "k": jnp.zeros(shape, dt),
        "v": jnp.zeros(shape, dt),
        "segment_ids": jnp.zeros((batch_size, max_length), jnp.int32),
        "index": jnp.zeros((), jnp.int32),
    }


def _dummy_ids() -> jax.Array:
    return jnp.zeros((1, 1), jnp.int32)


def _init_model(config: ModelConfig) -> Transformer:
    """The module that ``init`` traces on a one-token row: with XLA attention, since splash cannot
    tile such a row, and scanned layers, whose init compiles in seconds where unrolled takes
    minutes at 6.7B; neither changes the params."""
    return Transformer(config.replace(attention="xla", scan_layers=True))


def boxed_shapes(config: ModelConfig) -> Params:
    """The params tree as ``ShapeDtypeStruct`` leaves inside ``nn.Partitioned`` boxes (no memory)."""
    return jax.eval_shape(lambda: _init_model(config).init(jax.random.PRNGKey(0), _dummy_ids())["params"])


def logical_axes(config: ModelConfig) -> Params:
    """A tree like the params with a ``PartitionSpec`` of logical axis names at each leaf."""
    return nn.get_partition_spec(boxed_shapes(config))


def init_params(config: ModelConfig, rng: jax.Array) -> Params:
    """Random params (the 'params' collection, unboxed): a plain pytree of arrays."""
    init = jax.jit(lambda r: nn.meta.unbox(_init_model(config).init(r, _dummy_ids())["params"]))
    return init(rng)


def cast_kernels(config: ModelConfig, params: Params) -> Params:
    """The params with every projection kernel in the compute dtype (norms and embedding as they are).

    Done once per step, outside the layer scan, rather than by every layer (and again by remat's
    recomputation); FSDP then gathers compute-dtype weights. Gradients are the same: a kernel's
    gradient is a compute-dtype matmul either way.
    """
    dt = _dtype(config.dtype)
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.astype(dt) if getattr(path[-1], "key", None) == "kernel" else p, params
    )


def apply(
    config: ModelConfig,
    params: Params,
    input_ids: jax.Array,
    positions: Optional[jax.Array] = None,
    segment_ids: Optional[jax.Array] = None,
) -> jax.Array:
    """Logits [B, S, V] float32."""
    return Transformer(config).apply({"params": cast_kernels(config, params)}, input_ids, positions, segment_ids)


def output_head(config: ModelConfig, params: Params) -> jax.Array:
    """The output projection [d, V] in the compute dtype (the embedding's transpose when tied)."""
    dt = _dtype(config.dtype)
    if config.tie_word_embeddings:
        return params["embed"]["embedding"].astype(dt).T
    return params["lm_head"]["kernel"].astype(dt)


def apply_hidden(
    config: ModelConfig,
    params: Params,
    input_ids: jax.Array,
    positions: Optional[jax.Array] = None,
    segment_ids: Optional[jax.Array] = None,
) -> tuple[jax.Array, jax.Array]:
    """The final-normed hidden states [B, S, d] and the output head [d, V], both in the compute
    dtype, for a loss that applies the head itself (``train.loss.head_loss``)."""
    params = cast_kernels(config, params)
    hidden = Transformer(config).apply({"params": params}, input_ids, positions, segment_ids, return_hidden=True)
    return hidden, output_head(config, params)
