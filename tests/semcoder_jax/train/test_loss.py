"""The loss counts response targets only, token-weighted, and packed segments don't interact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.train.loss import next_token_loss_sums, target_weights


def _row(rng, seq=16, vocab=32):
    ids = rng.integers(1, vocab, (2, seq))
    seg = np.array([[1] * 6 + [2] * 7 + [0] * 3, [1] * 16])
    mask = np.array([[0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0], [0] * 4 + [1] * 12])
    return ids, mask, seg


def test_target_weights_skip_prompt_padding_and_segment_starts():
    ids, mask, seg = _row(np.random.default_rng(0))
    mask = mask.copy()
    mask[0, 6] = 1  # first token of segment 2: predicted from segment 1, must not count
    w = np.asarray(target_weights(jnp.asarray(mask), jnp.asarray(seg)))
    expected = mask[:, 1:].astype(np.float32)
    expected[0, 5] = 0.0  # target 6 starts segment 2
    expected[0, 12:] = 0.0  # padding targets
    np.testing.assert_array_equal(w, expected)


def test_loss_is_mean_ce_over_response_targets():
    rng = np.random.default_rng(1)
    ids, mask, seg = _row(rng)
    logits = rng.normal(size=(2, 16, 32)).astype(np.float32)
    sums = next_token_loss_sums(jnp.asarray(logits), jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(seg))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    total, count = 0.0, 0
    for b in range(2):
        for i in range(15):
            if mask[b, i + 1] and seg[b, i + 1] == seg[b, i] and seg[b, i + 1] != 0:
                total -= logp[b, i, ids[b, i + 1]]
                count += 1
    assert float(sums.weight) == count
    np.testing.assert_allclose(float(sums.loss), total, rtol=1e-5)


def test_masked_prompt_tokens_add_nothing():
    rng = np.random.default_rng(2)
    ids, mask, seg = _row(rng)
    logits = rng.normal(size=(2, 16, 32)).astype(np.float32)
    base = next_token_loss_sums(jnp.asarray(logits), jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(seg))
    ids2, logits2 = ids.copy(), logits.copy()
    masked_targets = np.argwhere(np.asarray(target_weights(jnp.asarray(mask), jnp.asarray(seg))) == 0)
    for b, i in masked_targets:  # change every uncounted target and the logits that predict it
        ids2[b, i + 1] = (ids2[b, i + 1] + 5) % 32
        logits2[b, i] = rng.normal(size=32) * 10
    logits2[:, -1] = 99.0  # the last position predicts nothing
    other = next_token_loss_sums(jnp.asarray(logits2), jnp.asarray(ids2), jnp.asarray(mask), jnp.asarray(seg))
    np.testing.assert_allclose(np.asarray(other), np.asarray(base), rtol=0, atol=0)
    # and a counted target does change the loss
    b, i = np.argwhere(np.asarray(target_weights(jnp.asarray(mask), jnp.asarray(seg))) == 1)[0]
    logits2[b, i, ids2[b, i + 1]] += 3.0
    moved = next_token_loss_sums(jnp.asarray(logits2), jnp.asarray(ids2), jnp.asarray(mask), jnp.asarray(seg))
    assert float(moved.loss) != float(base.loss)


def test_packed_segments_do_not_interact_through_the_model():
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    cfg = get_model_config("tiny", ["vocab_size=128", "max_position_embeddings=64"])
    params = llama.init_params(cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(3)
    a, b = rng.integers(1, 128, 9), rng.integers(1, 128, 12)
    ma, mb = np.r_[np.zeros(4), np.ones(5)], np.r_[np.zeros(3), np.ones(9)]

    @jax.jit
    def loss_sums(ids, mask, seg, pos):
        return next_token_loss_sums(llama.apply(cfg, params, ids, pos, seg), ids, mask, seg)

    def sums(ids, mask, seg, pos):
        return np.asarray(loss_sums(*(jnp.asarray(np.asarray(x)[None], jnp.int32) for x in (ids, mask, seg, pos))))

    pad = 24 - 21
    packed = sums(np.r_[a, b, np.zeros(pad)], np.r_[ma, mb, np.zeros(pad)],
                  np.r_[np.ones(9), 2 * np.ones(12), np.zeros(pad)], np.r_[np.arange(9), np.arange(12), np.zeros(pad)])
    alone_a = sums(a, ma, np.ones(9), np.arange(9))
    alone_b = sums(b, mb, np.ones(12), np.arange(12))
    np.testing.assert_allclose(packed, alone_a + alone_b, rtol=1e-5)
    assert packed[2] == ma[1:].sum() + mb[1:].sum()


def _largest_intermediate(fn, *args) -> int:
    """The element count of the largest value any equation (scan bodies included) of ``fn`` makes."""
    from jax.extend.core import ClosedJaxpr, Jaxpr

    def walk(jaxpr) -> int:
        best = 0
        for eqn in jaxpr.eqns:
            best = max([best] + [int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape")])
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else [p]:
                    if isinstance(sub, ClosedJaxpr):
                        best = max(best, walk(sub.jaxpr))
                    elif isinstance(sub, Jaxpr):
                        best = max(best, walk(sub))
        return best

    return walk(jax.make_jaxpr(fn)(*args).jaxpr)


# chunk 5 does not divide the 16 positions: the rows are padded to 20
@pytest.mark.parametrize("chunk, z_loss", [(0, 0.0), (0, 1e-2), (4, 0.0), (4, 1e-2), (5, 1e-2)])
def test_fused_head_loss_equals_full_logits(chunk, z_loss):
    from semcoder_jax.train.loss import head_loss

    rng = np.random.default_rng(4)
    ids, mask, seg = (jnp.asarray(x) for x in _row(rng))
    hidden = jnp.asarray(rng.normal(size=(2, 16, 8)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(8, 32)), jnp.float32)

    def full(h, k):
        sums = next_token_loss_sums(h @ k, ids, mask, seg)
        return sums.objective(z_loss), sums

    def fused(h, k):
        return head_loss(h, k, ids, mask, seg, z_loss=z_loss, chunk_size=chunk)

    grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))  # noqa: E731
    (obj, sums), grads = grad(full)(hidden, kernel)
    (fused_obj, fused_sums), fused_grads = grad(fused)(hidden, kernel)
    np.testing.assert_allclose(float(fused_obj), float(obj), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fused_sums), np.asarray(sums), rtol=1e-6)
    assert float(fused_sums.weight) > 0 and (z_loss == 0) == (float(fused_obj) == float(fused_sums.loss))
    for g, ref in zip(fused_grads, grads):
        np.testing.assert_allclose(np.asarray(g), np.asarray(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(jax.jit(fused)(hidden, kernel)[0]), float(obj), rtol=1e-6)  # primal path


def test_fused_head_loss_never_holds_the_whole_logits():
    from semcoder_jax.train.loss import head_loss

    rng = np.random.default_rng(5)
    ids, mask, seg = (jnp.asarray(x) for x in _row(rng))
    hidden, kernel = jnp.ones((2, 16, 8)), jnp.ones((8, 32))
    full = lambda h, k: next_token_loss_sums(h @ k, ids, mask, seg).loss  # noqa: E731
    fused = lambda h, k: head_loss(h, k, ids, mask, seg, chunk_size=4)[0]  # noqa: E731
    assert _largest_intermediate(jax.grad(full, argnums=(0, 1)), hidden, kernel) >= 2 * 15 * 32
    assert _largest_intermediate(jax.grad(fused, argnums=(0, 1)), hidden, kernel) <= 2 * 4 * 32  # one chunk's logits


def test_fused_head_loss_refuses_a_negative_chunk():
    from semcoder_jax.train.loss import head_loss

    ids, mask, seg = (jnp.asarray(x) for x in _row(np.random.default_rng(6)))
    with pytest.raises(ValueError, match="chunk size must be >= 0, got -4"):
        head_loss(jnp.ones((2, 16, 8)), jnp.ones((8, 32)), ids, mask, seg, chunk_size=-4)
