"""RoPE: relative-position property and linear scaling."""

import jax.numpy as jnp
import numpy as np

from semcoder_jax.model.rope import apply_rope


def test_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)), jnp.float32)

    def score(m, n, factor=None):
        qm = apply_rope(q, jnp.array([[m]]), theta=1e5, scaling_factor=factor)
        kn = apply_rope(k, jnp.array([[n]]), theta=1e5, scaling_factor=factor)
        return float(jnp.sum(qm * kn))

    assert abs(score(3, 1) - score(10, 8)) < 1e-4
    assert abs(score(3, 1) - score(3, 2)) > 1e-3
    assert abs(score(12, 4, factor=4.0) - score(3, 1)) < 1e-4  # positions divided by the factor
    np.testing.assert_allclose(apply_rope(q, jnp.array([[0]]), theta=1e5), q, atol=1e-7)
