"""The Flax decoder: packing, cache, remat, dtypes and compile time (HF parity: test_hf_parity.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.model import llama
from semcoder_jax.model.config import get_model_config


def _tiny(**changes):
    """The tiny preset with a small vocabulary: tests here need no tokenizer."""
    return get_model_config("tiny").replace(vocab_size=256, **changes)


def test_param_tree_and_logical_axes():
    config = _tiny()
    params = jax.eval_shape(lambda: llama.init_params(config, jax.random.PRNGKey(0)))
    L, D, H, KV, hd, F, V = 2, 64, 4, 2, 16, 128, config.vocab_size
    shapes = jax.tree.map(lambda a: a.shape, params)
    assert shapes == {
        "embed": {"embedding": (V, D)},
        "layers": {
            "attn_norm": {"scale": (L, D)},
            "attn": {"q_proj": {"kernel": (L, D, H, hd)}, "k_proj": {"kernel": (L, D, KV, hd)},
                     "v_proj": {"kernel": (L, D, KV, hd)}, "o_proj": {"kernel": (L, H, hd, D)}},
            "mlp_norm": {"scale": (L, D)},
            "mlp": {"gate_proj": {"kernel": (L, D, F)}, "up_proj": {"kernel": (L, D, F)}, "down_proj": {"kernel": (L, F, D)}},
        },
        "final_norm": {"scale": (D,)},
        "lm_head": {"kernel": (D, V)},
    }
    axes = llama.logical_axes(config)
    assert jax.tree.structure(axes, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)) == jax.tree.structure(params)
    assert tuple(axes["layers"]["attn"]["q_proj"]["kernel"]) == ("layers", "embed", "q_heads", "head_dim")
    assert tuple(axes["layers"]["mlp"]["down_proj"]["kernel"]) == ("layers", "mlp", "embed")
    assert tuple(axes["embed"]["embedding"]) == ("vocab", "embed")
    assert tuple(axes["lm_head"]["kernel"]) == ("embed", "vocab")
    assert tuple(axes["final_norm"]["scale"]) == ("norm",)
    tied = jax.eval_shape(lambda: llama.init_params(config.replace(tie_word_embeddings=True), jax.random.PRNGKey(0)))
    assert "lm_head" not in tied


def test_two_packed_segments_equal_each_alone():
    config = _tiny()
    params = llama.init_params(config, jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, config.vocab_size, 11), rng.integers(0, config.vocab_size, 17)
    n = 32
    rows = np.zeros((4, n), int)
    seg = np.zeros((4, n), int)
    pos = np.zeros((4, n), int)
    rows[0, :11], seg[0, :11], pos[0, :11] = a, 1, np.arange(11)  # a alone
    rows[1, :17], seg[1, :17], pos[1, :17] = b, 1, np.arange(17)  # b alone
    rows[2, :28], seg[2, :28] = np.concatenate([a, b]), [1] * 11 + [2] * 17  # packed, then padding
    pos[2, :28] = list(range(11)) + list(range(17))
    rows[3, :28], seg[3, :28], pos[3, :28] = rows[2, :28], 1, np.arange(28)  # one segment: b continues a
    fwd = jax.jit(lambda r, p, s: llama.apply(config, params, r, p, s))
    out = np.asarray(fwd(jnp.asarray(rows), jnp.asarray(pos), jnp.asarray(seg)))
    assert np.abs(out[2, :11] - out[0, :11]).max() <= 1e-5
    assert np.abs(out[2, 11:28] - out[1, :17]).max() <= 1e-5
    assert np.abs(out[3, 11:28] - out[1, :17]).max() > 1e-3
    assert np.isfinite(out).all()
    # Default positions restart at each segment change.
    derived = np.asarray(llama.segment_positions(jnp.asarray(seg)))
    np.testing.assert_array_equal(derived[seg != 0], pos[seg != 0])


def test_remat_policies_and_unrolled_layers_agree():
    config = _tiny()
    params = llama.init_params(config, jax.random.PRNGKey(0))
    ids = jax.random.randint(jax.random.PRNGKey(1), (2, 16), 0, config.vocab_size)

    def grads(cfg):
        return jax.jit(jax.grad(lambda p: jnp.mean(llama.apply(cfg, p, ids) ** 2)))(params)

    ref = grads(config)
    for variant in (dict(remat_policy="full"), dict(remat_policy="save_qkv_proj", scan_layers=False),
                    dict(remat_policy="save_dots_no_batch", scan_unroll=2)):
        got = grads(config.replace(**variant))
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=str(variant))


def test_scan_layers_auto_unrolls_on_gpu_only_and_init_is_the_same_either_way():
    auto = _tiny()
    assert auto.scan_layers is None
    assert [auto.scans_layers(b) for b in ("gpu", "cuda", "tpu", "cpu")] == [False, False, True, True]
    assert auto.scans_layers()  # this CPU
    assert not _tiny(scan_layers=False).scans_layers("tpu") and _tiny(scan_layers=True).scans_layers("gpu")
    ids = jnp.ones((1, 8), jnp.int32)
    key = jax.random.PRNGKey(0)
    for cfg, loops in ((auto, True), (auto.replace(scan_layers=False), False)):
        params = llama.init_params(cfg, key)
        text = jax.jit(lambda p: llama.apply(cfg, p, ids)).lower(params).as_text()
        assert ("stablehlo.while" in text) == loops
        assert "stablehlo.while" in jax.jit(lambda r: llama.init_params(cfg, r)).lower(key).as_text()  # init scans
        for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(llama.init_params(auto, key))):
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow
@pytest.mark.parametrize("mesh_axes", [dict(fsdp=8), dict(data=2, fsdp=2, tensor=2)])
def test_unrolled_train_step_matches_scanned_on_a_mesh(mesh_axes):
    """The trainer's step on 8 devices, layers unrolled (GPU's auto) vs scanned (CPU's): the same
    loss and gradients (SGD at lr 1, so the update is the gradient) under the same shardings."""
    import optax

    from semcoder_jax.packed_schema import FEATURES
    from semcoder_jax.train.config import MeshConfig
    from semcoder_jax.train.mesh import create_mesh
    from semcoder_jax.train.sharding import logical_to_shardings, opt_state_shardings
    from semcoder_jax.train.step import make_train_step, mesh_context

    mesh_cfg = MeshConfig(**mesh_axes)
    mesh, rules, sgd = create_mesh(mesh_cfg), mesh_cfg.rules(), optax.sgd(1.0)
    seg = np.ones((8, 16), np.int32)
    seg[:, 10:], seg[1, 13:] = 2, 0  # two packed segments, and padding
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(1, 256, (8, 16)), "loss_mask": (seg != 0).astype(np.int32), "segment_ids": seg,
             "positions": np.asarray(llama.segment_positions(jnp.asarray(seg)))}
    batch = {k: jnp.asarray(batch[k]) for k in FEATURES}

    shapes = jax.eval_shape(lambda: llama.init_params(_tiny(), jax.random.PRNGKey(0)))
    before = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(np.float32), shapes)  # no init to compile

    def step(scan_layers):
        cfg = _tiny(scan_layers=scan_layers, remat_policy="full")
        shardings = logical_to_shardings(llama.logical_axes(cfg), shapes, mesh, rules)
        params = jax.device_put(before, shardings)
        state = {"params": params, "opt_state": sgd.init(params)}
        state_shardings = {"params": shardings, "opt_state": opt_state_shardings(jax.eval_shape(sgd.init, shapes), shardings, mesh)}
        with mesh_context(mesh, rules):
            lowered = make_train_step(cfg, sgd, mesh, rules, state_shardings).lower(state, batch)
            assert ("stablehlo.while" in lowered.as_text()) == scan_layers
            # XLA's CPU code generation unoptimised: 3 s of compile each instead of 5.
            fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
            new, metrics = lowered.compile(compiler_options=fast)(state, batch)
        assert jax.tree.map(lambda a: a.sharding, new["params"]) == shardings
        return float(metrics["loss"]), jax.tree.map(lambda a, b: a - np.asarray(b), before, new["params"])

    (scanned_loss, scanned), (unrolled_loss, unrolled) = step(True), step(False)
    np.testing.assert_allclose(unrolled_loss, scanned_loss, rtol=1e-5)
    assert max(np.abs(g).max() for g in jax.tree.leaves(scanned)) > 1e-3
    for x, y in zip(jax.tree.leaves(unrolled), jax.tree.leaves(scanned)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_param_dtype_separate_from_compute_dtype():
    config = _tiny(dtype="bfloat16", param_dtype="float32")
    params = llama.init_params(config, jax.random.PRNGKey(0))
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    ids = jnp.ones((1, 8), jnp.int32)
    fwd = jax.jit(lambda p: llama.apply(config, p, ids))
    assert "bf16" in fwd.lower(params).as_text()
    logits = fwd(params)
    assert logits.dtype == jnp.float32
    f32 = np.asarray(jax.jit(lambda p: llama.apply(config.replace(dtype="float32"), p, ids))(params))
    assert 0 < np.abs(np.asarray(logits) - f32).max() < 0.05


@pytest.mark.parametrize("scan_layers", [True, False])
def test_kv_cache_prefill_and_decode_match_full_forward(scan_layers):
    config = _tiny(scan_layers=scan_layers)
    params = llama.init_params(config, jax.random.PRNGKey(0))
    ids = jax.random.randint(jax.random.PRNGKey(2), (2, 12), 0, config.vocab_size)
    step = jax.jit(lambda p, x, pos, c: llama.Transformer(config).apply({"params": p}, x, pos, cache=c))
    full = np.asarray(jax.jit(lambda p, x: llama.apply(config, p, x))(params, ids))
    logits, cache = step(params, ids[:, :8], None, llama.init_cache(config, 2, 16))
    steps = [np.asarray(logits)]
    for t in range(8, 12):
        logits, cache = step(params, ids[:, t : t + 1], jnp.full((2, 1), t), cache)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    assert int(cache["index"]) == 12


def _program_size(num_layers: int) -> int:
    """Characters of the lowered training step: what XLA compiles, so what its compile time follows."""
    config = _tiny(num_layers=num_layers, remat_policy="full", scan_layers=True)
    shapes = jax.eval_shape(lambda: llama.init_params(config, jax.random.PRNGKey(0)))
    ids = jax.ShapeDtypeStruct((2, 64), jnp.int32)
    step = jax.jit(jax.value_and_grad(lambda p, x: jnp.mean(llama.apply(config, p, x))))
    return len(step.lower(shapes, ids).as_text())


def test_compile_time_does_not_grow_with_depth():
    """The layers are scanned: 16 lower to the program of 2 (unrolled they lower to twice its size).
    Sizes, not compile seconds, which a shared machine makes noisy."""
    assert _program_size(16) < 1.05 * _program_size(2)


@pytest.mark.parametrize("override, message", [
    ("num_kv_heads=0", "model.num_kv_heads must be >= 1, got 0"),
    ("head_dim=7", "model.head_dim must be a positive even number"),
    ("num_heads=64", r"model.hidden_size / num_heads = 1 must be even"),
    ("rope_scaling_factor=-2", "model.rope_scaling_factor must be > 0"),
])
def test_config_refuses_sizes_that_fail_later_naming_the_field(override, message):
    """A bad size is a ConfigError naming the field, not a ZeroDivisionError or a shape error at init."""
    from semcoder_jax.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        get_model_config("tiny", [override])


def test_flops_per_token_is_the_reference_scripts_count():
    """6·N + 12·L·d·S with N = L·(4d² + 3df) + dV, as ../shared/bench/ref_llama_step.py counts."""
    cfg = get_model_config("deepseek-coder-6.7b")
    d, L, f, V, S = cfg.hidden_size, cfg.num_layers, cfg.intermediate_size, cfg.vocab_size, 2048
    assert cfg.flops_per_token(S) == 6 * (L * (4 * d * d + 3 * d * f) + d * V) + 12 * L * d * S
    wide = get_model_config("tiny", ["head_dim=32"])  # attention width 4 · 32 = 128, not hidden_size 64
    narrow = get_model_config("tiny")
    attention = lambda c: c.flops_per_token(S) - 6 * (c.num_layers * (c.layer_params() - 2 * c.hidden_size) + c.hidden_size * c.vocab_size)  # noqa: E731
    assert attention(wide) == 12 * wide.num_layers * 128 * S and attention(narrow) == 12 * narrow.num_layers * 64 * S
