"""The attention function: masks, GQA, padding rows, and the kernels' guards."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.attention import (
    RESIDUAL_NAME,
    count_segment_runs,
    dot_product_attention,
    packed_segments,
    with_saveable_residuals,
)


def _naive(q, k, v, seg, causal=True):
    """Per-(batch, head) loop with explicit allowed-key lists."""
    b, s, h, hd = q.shape
    rep = h // k.shape[2]
    out = np.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            for i in range(s):
                if seg[bi, i] == 0:
                    continue
                keys = [j for j in range(s) if seg[bi, j] == seg[bi, i] and (j <= i or not causal)]
                sc = np.array([q[bi, i, hi] @ k[bi, j, hi // rep] for j in keys]) / np.sqrt(hd)
                w = np.exp(sc - sc.max())
                w /= w.sum()
                out[bi, i, hi] = sum(wj * v[bi, j, hi // rep] for wj, j in zip(w, keys))
    return out


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_xla_matches_naive_with_segments_and_gqa(kv_heads):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 9, 4, 8)).astype(np.float32)
    k = rng.normal(size=(2, 9, kv_heads, 8)).astype(np.float32)
    v = rng.normal(size=(2, 9, kv_heads, 8)).astype(np.float32)
    seg = np.array([[1, 1, 1, 2, 2, 2, 2, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1, 1]])
    for causal in (True, False):
        got = np.asarray(dot_product_attention(q, k, v, segment_ids_q=jnp.asarray(seg), segment_ids_kv=jnp.asarray(seg), causal=causal))
        assert np.isfinite(got).all()
        want = _naive(q, k, v, seg, causal)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_padding_rows_are_zero_and_gradients_finite():
    q = jnp.ones((1, 4, 2, 8))
    seg = jnp.array([[0, 0, 1, 1]])
    out = dot_product_attention(q, q, q, segment_ids_q=seg, segment_ids_kv=seg)
    assert np.all(np.asarray(out[0, :2]) == 0)
    g = jax.grad(lambda x: dot_product_attention(x, x, x, segment_ids_q=seg, segment_ids_kv=seg).sum())(q)
    assert np.isfinite(np.asarray(g)).all()


def test_query_offset_is_causal_against_a_longer_cache():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 6, 2, 8)).astype(np.float32)
    k = rng.normal(size=(1, 6, 2, 8)).astype(np.float32)
    full = np.asarray(dot_product_attention(q, k, k))
    last = np.asarray(dot_product_attention(q[:, 4:5], k, k, causal=True, q_offset=4))
    np.testing.assert_allclose(last[:, 0], full[:, 4], atol=1e-6)


def test_splash_off_tpu_and_unknown_implementation_are_clear_errors():
    q = jnp.ones((1, 4, 2, 8))
    with pytest.raises(SemcoderError, match="splash.*TPU"):
        dot_product_attention(q, q, q, implementation="splash")
    with pytest.raises(SemcoderError, match="unknown implementation"):
        dot_product_attention(q, q, q, implementation="flash")
    with pytest.raises(SemcoderError, match="multiple"):
        dot_product_attention(q, jnp.ones((1, 4, 3, 8)), jnp.ones((1, 4, 3, 8)))


def test_packed_segments_cover_every_run_and_count_padding():
    seg = jnp.array([[1, 1, 2, 2, 2, 0, 0, 0], [1] * 8, [1, 2, 3, 4, 4, 4, 4, 4]])
    packed = packed_segments(seg, 4)
    np.testing.assert_array_equal(packed.seqlen, [[2, 3, 3, -1], [8, -1, -1, -1], [1, 1, 1, 5]])
    np.testing.assert_array_equal(packed.offsets, [[0, 2, 5, -1, -1], [0, -1, -1, -1, -1], [0, 1, 2, 3, -1]])
    np.testing.assert_array_equal(count_segment_runs(seg), [3, 1, 4])
    np.testing.assert_array_equal(count_segment_runs(np.asarray(seg)), [3, 1, 4])


def test_saveable_residuals_spare_the_forward_recompute():
    """Tagged residuals give the same gradients; a policy that saves them skips the kernel's
    forward in the backward pass (here: one softmax's exp fewer)."""
    from semcoder_jax.model.llama import remat_policy

    def kernel(q, k, v, seg):
        return dot_product_attention(q, k, v, segment_ids_q=seg, segment_ids_kv=seg)

    q, k, v = (jax.random.normal(r, (2, 16, 2, 8)) for r in jax.random.split(jax.random.PRNGKey(0), 3))
    seg = jnp.array([[1] * 6 + [2] * 10, [1] * 16])
    tagged = with_saveable_residuals(kernel, RESIDUAL_NAME)

    def loss(fn):
        return lambda q, k, v: jnp.tanh(fn(jnp.sin(q), k, v, seg)).sum()

    want = jax.grad(loss(kernel), argnums=(0, 1, 2))(q, k, v)
    exps = {}
    for policy in ("save_dots", "save_dots_attention"):
        f = jax.grad(jax.checkpoint(loss(tagged), policy=remat_policy(policy)), argnums=(0, 1, 2))
        for a, b in zip(f(q, k, v), want):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        exps[policy] = str(jax.make_jaxpr(f)(q, k, v)).count(" exp ")
    assert exps["save_dots_attention"] < exps["save_dots"]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_segment_bias_keeps_padding_rows_finite_in_every_dtype(dtype):
    """The cuDNN bias path: a padding row is masked throughout, and its softmax must stay finite
    (a -1e9 bias is -inf in float16, and the row would be NaN)."""
    from semcoder_jax.model.attention import segment_bias

    seg = jnp.array([[1, 1, 2, 0]])
    bias = segment_bias(seg, seg, jnp.dtype(dtype))
    assert bias.dtype == jnp.dtype(dtype) and bool(jnp.isfinite(bias).all())
    assert (bias[0, 0] == 0).tolist() == [[True, True, False, False], [True, True, False, False],
                                          [False, False, True, False], [False, False, False, False]]
    scores = jnp.zeros((1, 1, 4, 4), jnp.dtype(dtype)) + bias
    assert bool(jnp.isfinite(jax.nn.softmax(scores.astype(jnp.float32), axis=-1)).all())


def test_auto_attention_picks_the_fast_kernel_of_each_backend():
    """One config for GPU and TPU: ``auto`` is cuDNN on GPU (half-precision compute only: cuDNN has no
    float32 kernel), splash on TPU, XLA on CPU; an explicit choice is kept everywhere."""
    from semcoder_jax.model.config import ModelConfig

    auto = ModelConfig(attention="auto")
    assert [auto.attention_kernel(b) for b in ("gpu", "tpu", "cpu")] == ["cudnn", "splash", "xla"]
    assert ModelConfig(attention="auto", dtype="float32").attention_kernel("gpu") == "xla"
    assert ModelConfig(attention="xla").attention_kernel("gpu") == "xla"
    assert ModelConfig().attention == "auto" and ModelConfig().attention_kernel() == "xla"  # this CPU


def test_auto_attention_on_tpu_uses_xla_for_rows_splash_cannot_tile(monkeypatch):
    """Splash tiles a sequence in blocks of 128 tokens; under ``auto`` a TPU run of shorter or
    untiled rows (the tiny configs' 32/64 tokens) takes XLA instead of failing in the kernel."""
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    auto = get_model_config("tiny").replace(attention="auto", vocab_size=512)
    assert [auto.attention_kernel("tpu", seq_len=n) for n in (None, 256, 64, 200)] == ["splash", "splash", "xla", "xla"]
    assert auto.replace(attention="splash").attention_kernel("tpu", seq_len=64) == "splash"  # explicit: kept
    params = jax.eval_shape(lambda: llama.init_params(auto, jax.random.PRNGKey(0)))
    ids = jax.ShapeDtypeStruct((2, 32), jnp.int32)
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    # traced as on a TPU: splash would raise on 32-token rows; the model must route them to XLA
    assert jax.eval_shape(lambda p, i: llama.apply(auto, p, i), params, ids).shape == (2, 32, 512)
    with pytest.raises(SemcoderError, match="32 tokens"):
        jax.eval_shape(lambda p, i: llama.apply(auto.replace(attention="splash"), p, i), params, ids)


def test_splash_names_the_sequence_length_it_cannot_tile(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    q = jnp.zeros((1, 64, 2, 8), jnp.float32)
    with pytest.raises(SemcoderError, match="64 tokens.*multiple of 128"):
        dot_product_attention(q, q, q, implementation="splash")


def _tpu_mesh_setup(monkeypatch, seq_len=128):
    """The tiny model with ``auto`` attention on a (data 2, fsdp 2, tensor 2) CPU mesh that passes for
    a TPU one: the trainer's mesh and rules, a row batch and the loss under its mesh context."""
    from semcoder_jax.model.config import get_model_config
    from semcoder_jax.train.config import MeshConfig
    from semcoder_jax.train.mesh import create_mesh
    from semcoder_jax.train.step import make_loss_fn

    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    cfg = get_model_config("tiny").replace(attention="auto", vocab_size=512)
    mesh_cfg = MeshConfig(data=2, fsdp=2, tensor=2).validate()
    mesh, rules = create_mesh(mesh_cfg), mesh_cfg.rules()
    seg = np.repeat([[1, 2, 0]], 4, axis=0).repeat([50, 60, seq_len - 110], axis=1)
    batch = {"input_ids": jnp.asarray(np.arange(4 * seq_len).reshape(4, seq_len) % 500, jnp.int32),
             "segment_ids": jnp.asarray(seg, jnp.int32), "loss_mask": jnp.asarray(seg > 0, jnp.int32),
             "positions": jnp.asarray(np.tile(np.arange(seq_len), (4, 1)), jnp.int32)}
    return cfg, mesh, rules, batch, make_loss_fn


def test_splash_lowers_for_a_tpu_mesh_of_several_chips(monkeypatch):
    """Mosaic kernels cannot be partitioned by XLA: splash must run per shard (``shard_map``), or
    every multi-chip TPU run fails to compile its first step."""
    from semcoder_jax.model import llama
    from semcoder_jax.train.step import mesh_context

    cfg, mesh, rules, batch, make_loss_fn = _tpu_mesh_setup(monkeypatch)
    assert cfg.attention_kernel(seq_len=128) == "splash"
    params = jax.eval_shape(lambda: llama.init_params(cfg, jax.random.PRNGKey(0)))
    grad = jax.grad(lambda p, b: make_loss_fn(cfg, 0.0)(p, b)[0])
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    with mesh_context(mesh, rules):
        jax.jit(grad, in_shardings=(None, shard)).trace(params, batch).lower(lowering_platforms=("tpu",))


def test_splash_per_shard_matches_xla_on_a_mesh(monkeypatch):
    """The sharded splash call (its kernel interpreted on the CPU) gives the XLA kernel's loss and gradients."""
    import functools

    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

    from semcoder_jax.model import llama
    from semcoder_jax.train.step import mesh_context

    cfg, mesh, rules, batch, make_loss_fn = _tpu_mesh_setup(monkeypatch)
    monkeypatch.setattr(sk, "make_splash_mha_single_device",
                        functools.partial(sk.make_splash_mha_single_device, interpret=True))
    params = llama.init_params(cfg, jax.random.PRNGKey(0))
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    batch = jax.device_put(batch, shard)

    def loss_and_grads(config):
        with mesh_context(mesh, rules):
            return jax.jit(jax.value_and_grad(lambda p, b: make_loss_fn(config, 0.0)(p, b)[0]))(params, batch)

    got, want = loss_and_grads(cfg), loss_and_grads(cfg.replace(attention="xla"))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)


def test_params_initialise_whatever_the_kernel(monkeypatch):
    """Initialisation traces a one-token row, which splash cannot tile: an explicit
    ``model.attention=splash`` must still get its params (and their shardings) on a TPU."""
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    cfg = get_model_config("tiny").replace(attention="splash", vocab_size=512)
    got = jax.eval_shape(lambda: llama.init_params(cfg, jax.random.PRNGKey(0)))  # traced, not compiled
    want = jax.eval_shape(lambda: llama.init_params(cfg.replace(attention="xla"), jax.random.PRNGKey(0)))
    assert jax.tree.structure(got) == jax.tree.structure(want)
    assert jax.tree.leaves(got) == jax.tree.leaves(want)
    assert llama.logical_axes(cfg) == llama.logical_axes(cfg.replace(attention="xla"))
