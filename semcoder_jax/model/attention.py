"""Causal, segment-aware dot-product attention behind one function, with three kernels.

A query attends to a key iff both are in the same segment, the key's segment is not 0
(padding), and (when causal) the key is not after the query. Packed rows therefore never
attend across examples.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import PartitionSpec as P

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import SPLASH_BLOCK

# What ``_cudnn_packed`` passes to JAX's private cuDNN entry point, and the mask types it uses.
_PACKED_KWARGS = ("q_seqlen", "kv_seqlen", "q_offsets", "kv_offsets", "scale", "mask_type", "qkv_layout")
_PACKED_MASKS = ("PADDING", "PADDING_CAUSAL")


def _packed_entry_point(module: Any) -> Any:
    """``module`` if it offers the packed cuDNN call as ``_cudnn_packed`` makes it, else None.

    The module is private (``jax._src``) and changes between JAX releases; a call it no longer
    takes would fail inside the jitted step on the GPU, so any mismatch falls back to the public
    cuDNN call with a segment bias instead.
    """
    try:
        params = inspect.signature(module.dot_product_attention).parameters
        masks = module.MaskType
    except (AttributeError, TypeError, ValueError):
        return None
    fits = all(k in params for k in _PACKED_KWARGS) and all(hasattr(masks, m) for m in _PACKED_MASKS)
    return module if fits else None


try:  # JAX's own cuDNN entry point: the public one has no packed (per-segment) layout.
    from jax._src.cudnn import fused_attention_stablehlo as _cudnn_fa
except Exception as e:  # noqa: BLE001 - moved, renamed, or failing to load in this JAX build
    logging.getLogger(__name__).info("no packed cuDNN attention in jax %s (%s)", jax.__version__, e)
    _cudnn_fa = None
if _cudnn_fa is not None and _packed_entry_point(_cudnn_fa) is None:
    logging.getLogger(__name__).warning(
        "jax %s: its private cuDNN attention no longer takes the packed call made here, so packed rows "
        "use the slower segment-bias path", jax.__version__)
    _cudnn_fa = None

Implementation = Literal["xla", "cudnn", "splash"]

# Finite rather than -inf so that a fully masked row (padding) gives a finite softmax.
_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


# The name under which the packed cuDNN kernel's residuals (q, k, v, output, softmax statistics)
# are offered to remat policies (``save_dots_attention``).
RESIDUAL_NAME = "attention_residuals"


class PackedSegments(NamedTuple):
    """Each row's runs of equal segment id in cuDNN's packed layout (made once per forward pass).

    ``seqlen`` [B, M]: run lengths; ``offsets`` [B, M+1]: run starts; both -1 past a row's last
    run. Padding (segment 0) is a run of its own, so every token belongs to exactly one run and
    no real token sees it.
    """

    seqlen: jax.Array
    offsets: jax.Array


def packed_segments(segment_ids: jax.Array, max_segments: int) -> PackedSegments:
    """The runs of ``segment_ids`` [B, S]. Rows with more than ``max_segments`` runs lose the rest:
    callers check that first (``count_segment_runs``)."""
    b, s = segment_ids.shape
    starts = jnp.concatenate([jnp.ones((b, 1), bool), segment_ids[:, 1:] != segment_ids[:, :-1]], axis=1)
    offsets = jax.vmap(lambda row: jnp.nonzero(row, size=max_segments + 1, fill_value=-1)[0])(starts)
    offsets = offsets.astype(jnp.int32)
    ends = jnp.concatenate([offsets[:, 1:], jnp.full((b, 1), -1, jnp.int32)], axis=1)
    ends = jnp.where(ends < 0, s, ends)
    seqlen = jnp.where(offsets >= 0, ends - offsets, -1)[:, :max_segments]
    offsets = offsets.at[:, max_segments].set(-1)
    return PackedSegments(seqlen, offsets)


def count_segment_runs(segment_ids) -> "jax.Array":
    """Runs of equal segment id per row (numpy or JAX), as ``packed_segments`` counts them."""
    return 1 + (segment_ids[:, 1:] != segment_ids[:, :-1]).sum(axis=1)


def packed_cudnn_available() -> bool:
    """Whether this JAX has the cuDNN entry point that takes packed segments."""
    return _cudnn_fa is not None


def with_saveable_residuals(fn: Callable[..., jax.Array], name: str) -> Callable[..., jax.Array]:
    """``fn`` whose VJP residuals are tagged ``checkpoint_name(name)``.

    A kernel behind its own ``custom_vjp`` (cuDNN attention) keeps its residuals out of sight of
    remat policies, so the backward pass runs its forward again. Tagged, a policy that saves
    ``name`` keeps them instead.
    """
    wrapped = jax.custom_vjp(fn)

    def fwd(*args):
        out, vjp = jax.vjp(fn, *args)
        return out, jax.tree.map(lambda r: checkpoint_name(r, name), vjp)

    wrapped.defvjp(fwd, lambda vjp, g: vjp(g))
    return wrapped


def attention_mask(
    segment_ids_q: jax.Array, segment_ids_kv: jax.Array, *, causal: bool, q_offset: jax.Array | int = 0
) -> jax.Array:
    """Boolean [B, S, T]: same segment, key not padding, and key index <= query index + q_offset."""
    mask = (segment_ids_q[:, :, None] == segment_ids_kv[:, None, :]) & (segment_ids_kv[:, None, :] != 0)
    if causal:
        q_idx = jnp.arange(segment_ids_q.shape[1])[:, None] + q_offset
        kv_idx = jnp.arange(segment_ids_kv.shape[1])[None, :]
        mask = mask & (kv_idx <= q_idx)[None]
    return mask


def _xla(q, k, v, segment_ids_q, segment_ids_kv, causal, q_offset, scale):
    b, s, h, hd = q.shape
    kv = k.shape[2]
    qg = q.reshape(b, s, kv, h // kv, hd)
    scores = jnp.einsum("bskgd,btkd->bkgst", qg, k, preferred_element_type=jnp.float32) * scale
    mask = attention_mask(segment_ids_q, segment_ids_kv, causal=causal, q_offset=q_offset)[:, None, None]
    scores = jnp.where(mask, scores, _MASK_VALUE)
    probs = jax.nn.softmax(scores, axis=-1)
    probs = jnp.where(mask, probs, 0.0).astype(v.dtype)  # fully masked rows give zeros, not an average
    out = jnp.einsum("bkgst,btkd->bskgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(b, s, h, hd).astype(q.dtype)


def cached_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    cache_k: jax.Array,
    cache_v: jax.Array,
    *,
    segment_ids_q: jax.Array,
    segment_ids_cache: jax.Array,
) -> jax.Array:
    """Attention of new tokens (q, k, v [B, S, ., hd]) over a KV cache [B, T, KV, hd] plus themselves.

    Every cached key of the query's segment is earlier than the new tokens; the new tokens are
    causal among themselves. Scores against the cache and the new keys are computed separately
    and share one softmax, so the cache is only read, never copied.
    """
    b, s, h, hd = q.shape
    kv = k.shape[2]
    qg = q.reshape(b, s, kv, h // kv, hd)
    scale = hd**-0.5
    same_seg = segment_ids_q[:, :, None] == segment_ids_cache[:, None, :]
    mask_cache = (same_seg & (segment_ids_cache[:, None, :] != 0))[:, None, None]
    mask_new = attention_mask(segment_ids_q, segment_ids_q, causal=True)[:, None, None]
    s_cache = jnp.einsum("bskgd,btkd->bkgst", qg, cache_k.astype(q.dtype), preferred_element_type=jnp.float32) * scale
    s_new = jnp.einsum("bskgd,btkd->bkgst", qg, k, preferred_element_type=jnp.float32) * scale
    mask = jnp.concatenate([mask_cache, mask_new], axis=-1)
    scores = jnp.where(mask, jnp.concatenate([s_cache, s_new], axis=-1), _MASK_VALUE)
    probs = jnp.where(mask, jax.nn.softmax(scores, axis=-1), 0.0).astype(v.dtype)
    t = cache_k.shape[1]
    out = jnp.einsum("bkgst,btkd->bskgd", probs[..., :t], cache_v.astype(v.dtype), preferred_element_type=jnp.float32)
    out = out + jnp.einsum("bkgst,btkd->bskgd", probs[..., t:], v, preferred_element_type=jnp.float32)
    return out.reshape(b, s, h, hd).astype(q.dtype)


def _cudnn_packed(q, k, v, packed: PackedSegments, causal, scale):
    """cuDNN fused attention over packed runs (no [S, T] mask or bias is ever built).

    Key/value heads are repeated up to the query heads first: JAX (0.10 and 0.11 included) scales
    ``kv_offsets`` by the query's heads, so with fewer key/value heads (GQA: the 33B and tiny
    presets) cuDNN silently read other tokens' keys (fixed upstream in jax-ml/jax#39521).
    """
    mask_type = _cudnn_fa.MaskType.PADDING_CAUSAL if causal else _cudnn_fa.MaskType.PADDING
    groups = q.shape[2] // k.shape[2]

    def kernel(q, k, v, seqlen, offsets):
        if groups > 1:  # query head i reads key/value head i // groups, as in ``_xla``
            k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)
        return _cudnn_fa.dot_product_attention(
            q, k, v, q_seqlen=seqlen, kv_seqlen=seqlen, q_offsets=offsets, kv_offsets=offsets,
            scale=scale, mask_type=mask_type, qkv_layout="BTNH",
        )

    return with_saveable_residuals(kernel, RESIDUAL_NAME)(q, k, v, packed.seqlen, packed.offsets)


def segment_bias(segment_ids_q: jax.Array, segment_ids_kv: jax.Array, dtype: Any) -> jax.Array:
    """[B, 1, S, T] additive bias keeping attention within segments; finite in ``dtype`` (float16
    included), so a padding row, masked throughout, gets a finite softmax."""
    same = (segment_ids_q[:, :, None] == segment_ids_kv[:, None, :]) & (segment_ids_kv[:, None, :] != 0)
    return jnp.where(same, 0.0, -0.7 * float(jnp.finfo(dtype).max)).astype(dtype)[:, None]


def _cudnn(q, k, v, segment_ids_q, segment_ids_kv, causal, scale):
    """cuDNN fused attention through the public API; segments enter as an additive bias."""
    bias = segment_bias(segment_ids_q, segment_ids_kv, q.dtype)
    return jax.nn.dot_product_attention(
        q, k, v, bias=bias, scale=scale, is_causal=causal, implementation="cudnn"
    )


def _splash(q, k, v, segment_ids_q, segment_ids_kv, causal, scale):
    """TPU Pallas splash attention (per example, vmapped over the batch); GQA natively.

    XLA cannot partition a Mosaic kernel, so under a mesh of several devices it runs per shard
    (``shard_map``): rows over the batch's mesh axes, heads over the heads' axes where they divide.
    """
    if jax.default_backend() != "tpu":
        raise SemcoderError(f"attention 'splash' needs a TPU, but the JAX backend is {jax.default_backend()!r}")
    if q.shape[1] % SPLASH_BLOCK or k.shape[1] % SPLASH_BLOCK:
        raise SemcoderError(f"attention 'splash': rows of {q.shape[1]} tokens; splash needs a multiple of "
                            f"{SPLASH_BLOCK} (set data.seq_len, or model.attention=auto / xla)")
    local = functools.partial(_splash_local, causal=causal, scale=scale)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        return local(q, k, v, segment_ids_q, segment_ids_kv)
    rows = _mesh_axes(mesh, "activation_batch", q.shape[0])
    heads = _mesh_axes(mesh, "activation_heads", q.shape[2])
    if heads != _mesh_axes(mesh, "activation_kv_heads", k.shape[2]):
        heads = None  # each shard's query heads must share its key/value heads
    qkv, ids = P(rows, None, heads, None), P(rows, None)
    sharded = jax.shard_map(local, mesh=mesh, in_specs=(qkv, qkv, qkv, ids, ids), out_specs=qkv, check_vma=False)
    return sharded(q, k, v, segment_ids_q, segment_ids_kv)


def _mesh_axes(mesh: Any, logical: str, size: int) -> Any:
    """The mesh axes of a logical activation axis under the current rules, if they divide ``size``."""
    import flax.linen as nn

    axes = nn.logical_to_mesh_axes((logical,))[0]
    names = axes if isinstance(axes, tuple) else (axes,) if axes else ()
    names = tuple(a for a in names if a in mesh.axis_names)
    count = math.prod(mesh.shape[a] for a in names)
    return names if names and size % count == 0 else None


def _splash_local(q, k, v, segment_ids_q, segment_ids_kv, *, causal, scale):
    try:  # experimental: JAX may move it (tokamax carries a copy)
        from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
        from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
    except ImportError as e:
        raise SemcoderError(f"attention 'splash': this JAX {jax.__version__} has no TPU splash kernel ({e}); "
                            "set model.attention=xla") from e

    b, s, h, hd = q.shape
    t = k.shape[1]
    head_mask = sm.CausalMask(shape=(s, t)) if causal else sm.FullMask((s, t))
    kernel = sk.make_splash_mha_single_device(sm.MultiHeadMask([head_mask] * h))
    qh = jnp.swapaxes(q * jnp.asarray(scale, q.dtype), 1, 2)  # splash does not scale: [B, H, S, hd]
    kh, vh = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
    # Padding (0) keys only match padding queries, whose rows thus stay non-empty (finite).
    ids = sk.SegmentIds(q=segment_ids_q.astype(jnp.int32), kv=segment_ids_kv.astype(jnp.int32))
    out = jax.vmap(kernel)(qh, kh, vh, segment_ids=ids)
    return jnp.swapaxes(out, 1, 2).astype(q.dtype)


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    segment_ids_q: Optional[jax.Array] = None,
    segment_ids_kv: Optional[jax.Array] = None,
    causal: bool = True,
    implementation: Implementation = "xla",
    q_offset: jax.Array | int = 0,
    packed: Optional[PackedSegments] = None,
) -> jax.Array:
    """Attention of q [B, S, H, hd] over k, v [B, T, KV, hd] (H a multiple of KV) -> [B, S, H, hd].

    ``segment_ids_*`` [B, S] / [B, T] default to all ones. ``q_offset`` (xla only) places query i
    at key index i + q_offset for the causal mask, as when decoding against a KV cache.
    ``packed`` (self-attention, cudnn only) the runs of ``segment_ids_q``: cuDNN then attends
    within each run, which is the segment mask without building it.
    """
    b, s, h, hd = q.shape
    t, kv = k.shape[1], k.shape[2]
    if h % kv:
        raise SemcoderError(f"attention: {h} query heads is not a multiple of {kv} key/value heads")
    if segment_ids_q is None:
        segment_ids_q = jnp.ones((b, s), jnp.int32)
    if segment_ids_kv is None:
        segment_ids_kv = jnp.ones((b, t), jnp.int32) if t != s else segment_ids_q
    scale = hd**-0.5
    if implementation == "xla":
        return _xla(q, k, v, segment_ids_q, segment_ids_kv, causal, q_offset, scale)
    if not (isinstance(q_offset, int) and q_offset == 0) or (causal and s != t):
        raise SemcoderError(f"attention {implementation!r}: a query offset / ragged causal mask needs 'xla'")
    if implementation == "cudnn" and packed is not None and packed_cudnn_available() and s == t:
        return _cudnn_packed(q, k, v, packed, causal, scale)
    if implementation == "cudnn":
        return _cudnn(q, k, v, segment_ids_q, segment_ids_kv, causal, scale)
    if implementation == "splash":
        return _splash(q, k, v, segment_ids_q, segment_ids_kv, causal, scale)
    raise SemcoderError(f"attention: unknown implementation {implementation!r} (xla, cudnn, splash)")
