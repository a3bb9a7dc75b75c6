"""The learning-rate schedule's ends, and which parameters weight decay reaches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcoder_jax.train.config import OptimizerConfig
from semcoder_jax.train.optimizer import make_optimizer, make_schedule, warmup_steps


@pytest.mark.parametrize("total, warmup", [(5, dict(warmup_steps=2)), (10, dict(warmup_steps=0)),
                                           (111, dict(warmup_steps=10)), (40, dict(warmup_ratio=0.03))])
def test_the_last_step_trains_at_min_lr_and_the_first_after_warmup_at_lr(total, warmup):
    """Step k reads the schedule at k - 1: the cosine ended one step after the run, so the last
    step trained above ``min_lr`` (1.34e-4 for 1e-4 on a 10-step run)."""
    cfg = OptimizerConfig(lr=1e-3, min_lr=1e-4, **warmup)
    sched = make_schedule(cfg, total)
    lrs = np.array([float(sched(i)) for i in range(total)])
    warm = warmup_steps(cfg, total)
    assert lrs[-1] == pytest.approx(1e-4, rel=1e-6)
    assert lrs[warm] == pytest.approx(1e-3, rel=1e-6)
    assert np.all(np.diff(lrs[:warm + 1]) > 0) and np.all(np.diff(lrs[warm:]) < 0)


def test_weight_decay_skips_the_norm_scales_only():
    """As Hugging Face's Trainer: no decay on LayerNorm/RMSNorm weights (and biases: Llama has none);
    the embedding and every kernel, the output head included, decay."""
    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config

    shapes = jax.eval_shape(lambda: llama.init_params(get_model_config("tiny", ["vocab_size=64"]), jax.random.PRNGKey(0)))
    params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
    opt, _ = make_optimizer(OptimizerConfig(lr=1e-2, min_lr=1e-2, weight_decay=0.5, clip_norm=0.0), 10)
    updates = jax.jit(lambda p: opt.update(jax.tree.map(jnp.zeros_like, p), opt.init(p), p)[0])(params)
    decayed = {jax.tree_util.keystr(p): bool(jnp.any(u != 0)) for p, u in jax.tree_util.tree_leaves_with_path(updates)}
    assert {k for k, v in decayed.items() if not v} == {"['final_norm']['scale']", "['layers']['attn_norm']['scale']",
                                                        "['layers']['mlp_norm']['scale']"}
    assert decayed["['embed']['embedding']"] and decayed["['lm_head']['kernel']"]


@pytest.mark.parametrize("total, warmup, expected", [
    (1, dict(warmup_steps=5), [1.0]),  # no room for a warm-up: the one step trains at lr
    (2, dict(warmup_steps=5), [0.0, 1.0]),  # warm-up cut to end before the last step, which reads lr
    (3, dict(warmup_ratio=0.5), [0.0, 0.5, 1.0]),  # ceil(1.5) = 2 warm-up steps
    (2, dict(warmup_steps=0), [1.0, 0.1]),
])
def test_short_runs_keep_a_step_at_lr(total, warmup, expected):
    cfg = OptimizerConfig(lr=1.0, min_lr=0.1, **warmup)
    np.testing.assert_allclose([float(make_schedule(cfg, total)(i)) for i in range(total)], expected, rtol=1e-6)


def test_a_run_resumed_from_the_earlier_schedule_sees_no_jump():
    """Checkpoints made before the cosine ended at the last step (it ended one step later) resume
    onto this schedule: the learning rate moves by at most 0.1% of lr over 1,000 steps."""
    import optax

    cfg = OptimizerConfig(lr=5e-5, min_lr=5e-6, warmup_steps=30)
    earlier = optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, 30),
                                    optax.cosine_decay_schedule(cfg.lr, 1000 - 30, alpha=0.1)], [30])
    steps = np.arange(1000)
    gap = np.abs(np.asarray(jax.vmap(make_schedule(cfg, 1000))(steps)) - np.asarray(jax.vmap(earlier)(steps)))
    assert 0 < gap.max() <= 1e-3 * cfg.lr
