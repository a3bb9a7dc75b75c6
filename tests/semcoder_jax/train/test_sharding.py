"""5 tiny steps give the same losses and parameters on 1 device, (data 2, fsdp 2, tensor 2) and (fsdp 8);
4 micro-batches and the fused chunked loss equal one full batch; a checkpoint restored on another mesh continues the same."""

import shutil

import jax
import numpy as np



def assert_trees_close(a, b, rtol=1e-5):
    """Each tensor's relative error ||a - b|| / ||b|| is at most ``rtol``."""
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for (path, x), y in zip(flat_a, flat_b):
        err = np.linalg.norm(np.asarray(x, np.float64) - y) / np.linalg.norm(np.asarray(y, np.float64))
        assert err <= rtol, f"{jax.tree_util.keystr(path)}: relative error {err:.2e} > {rtol}"


def test_meshes_match_one_device(tiny, make_config, fsdp8_run, one_device_run):
    losses_3d, params_3d, trainer = tiny.train(make_config(*tiny.DP_FSDP_TP, *tiny.FIVE_STEPS))
    assert dict(trainer.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert fsdp8_run["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1} and one_device_run["devices"] == 1
    gate = trainer.state["params"]["layers"]["mlp"]["gate_proj"]["kernel"]
    assert tuple(gate.sharding.spec)[1:] == ("fsdp", "tensor")  # really sharded, not replicated
    losses_1 = one_device_run["losses"]
    assert len(losses_1) == 5 and losses_1[-1] < losses_1[0]
    np.testing.assert_allclose(losses_3d, losses_1, rtol=1e-5)
    np.testing.assert_allclose(fsdp8_run["losses"], losses_1, rtol=1e-5)
    assert_trees_close(params_3d, one_device_run["params"])
    assert_trees_close(fsdp8_run["params"], one_device_run["params"])


def test_four_micro_batches_equal_one_batch(tiny, make_config, one_device_run):
    losses, params, _ = tiny.train(make_config("mesh.fsdp=2", "mesh.tensor=4", "data.micro_batches=4", *tiny.FIVE_STEPS))
    np.testing.assert_allclose(losses, one_device_run["losses"], rtol=1e-5)
    assert_trees_close(params, one_device_run["params"])


def test_fused_chunked_loss_matches_full_logits(tiny, make_config, one_device_run):
    """The fused output head + cross-entropy, sharded over (data 2, fsdp 2, tensor 2), trains the same."""
    losses, params, _ = tiny.train(make_config(*tiny.DP_FSDP_TP, "loss_chunk_size=8", *tiny.FIVE_STEPS))
    np.testing.assert_allclose(losses, one_device_run["losses"], rtol=1e-5)
    assert_trees_close(params, one_device_run["params"])


def test_restore_on_another_mesh_continues_with_same_losses(tiny, make_config, fsdp8_run, tmp_path):
    run_dir = tmp_path / "moved"
    shutil.copytree(fsdp8_run["run_dir"] / "checkpoints" / "3", run_dir / "checkpoints" / "3")
    losses, _, trainer = tiny.train(make_config(*tiny.DP_FSDP_TP, *tiny.FIVE_STEPS, run="moved"))
    assert trainer.step == 5 and len(losses) == 2  # resumed at step 3 on (data 2, fsdp 2, tensor 2)
    np.testing.assert_allclose(losses, fsdp8_run["losses"][3:], rtol=1e-5)


def test_model_activation_constraints_trace_under_the_mesh(make_config):
    """The trainer applies the model's logical activation constraints (falls back with a warning if not)."""
    import warnings

    from semcoder_jax.train.trainer import Trainer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(make_config("mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "max_steps=1"))
    trainer.close()
    reasons = [str(w.message) for w in caught if "activation sharding" in str(w.message)]
    assert trainer.constrain_activations, reasons


def test_dimensions_left_unsharded_are_logged(caplog):
    """2 KV heads cannot split over tensor=4: the k/v kernels stay whole there, and the log says so."""
    import logging

    from semcoder_jax.model import llama
    from semcoder_jax.model.config import get_model_config
    from semcoder_jax.train.config import MeshConfig
    from semcoder_jax.train.mesh import create_mesh
    from semcoder_jax.train.sharding import logical_to_shardings

    cfg = get_model_config("tiny", ["vocab_size=512"])
    mesh_cfg = MeshConfig(fsdp=2, tensor=4)
    shapes = jax.eval_shape(lambda: llama.init_params(cfg, jax.random.PRNGKey(0)))
    with caplog.at_level(logging.WARNING, logger="semcoder_jax.train.sharding"):
        shardings = logical_to_shardings(llama.logical_axes(cfg), shapes, create_mesh(mesh_cfg), mesh_cfg.rules())
    assert tuple(shardings["layers"]["attn"]["k_proj"]["kernel"].spec) == (None, "fsdp", None, None)
    assert tuple(shardings["layers"]["attn"]["q_proj"]["kernel"].spec) == (None, "fsdp", "tensor", None)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "['layers']['attn']['k_proj']['kernel']: dim 2 (2) on tensor" in message and "q_proj" not in message
