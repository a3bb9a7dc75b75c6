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
