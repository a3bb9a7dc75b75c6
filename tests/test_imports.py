"""What a run on the GPU image needs before it spends device time.

That image has no TensorFlow and no vLLM, and a newer JAX (0.11) than this machine: every module
the trainer, sampler, converter, evaluation and GPU benchmarks use must import without them (their
imports stay inside the functions that need them), and the spots that use private or moved JAX APIs
must take their fallback where those APIs are gone."""

import contextlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from semcoder_jax import PROJECT_ROOT

ABSENT = ("tensorflow", "tensorflow_datasets", "vllm")

# Put on PYTHONPATH, this hides ABSENT from every process started with it (subprocesses included)
# as an uninstalled package is hidden: ``find_spec`` gives None (libraries probe with it) and an
# import raises ModuleNotFoundError.
SITECUSTOMIZE = f"""
import importlib.machinery

_find_spec = importlib.machinery.PathFinder.find_spec


def _find_spec_on_gpu_image(cls, name, path=None, target=None):
    if name.split(".")[0] in {ABSENT!r}:
        return None
    return _find_spec(name, path, target)


importlib.machinery.PathFinder.find_spec = classmethod(_find_spec_on_gpu_image)
"""

# The GPU benchmarks are scripts, not package modules: imported by path, with benchmarks/ on sys.path.
GPU_SCRIPTS = ("train_step", "model_gpu", "attention_gpu")

SCRIPT = f"""
import importlib, importlib.util, pkgutil, sys

failed = []
for package in ("semcoder_jax", "eval"):
    root = importlib.import_module(package)
    for mod in pkgutil.walk_packages(root.__path__, package + "."):
        if mod.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception as e:
            failed.append(f"{{mod.name}}: {{type(e).__name__}}: {{e}}")
sys.path.insert(0, "benchmarks")
for name in {GPU_SCRIPTS!r}:
    try:
        spec = importlib.util.spec_from_file_location(name, f"benchmarks/{{name}}.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except Exception as e:
        failed.append(f"benchmarks/{{name}}.py: {{type(e).__name__}}: {{e}}")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {ABSENT!r})
print("\\n".join(failed + [f"imported: {{m}}" for m in leaked]))
"""


def gpu_image_env(folder: Path) -> dict[str, str]:
    """The environment of a process that cannot import tensorflow or vllm, as on the GPU image."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_the_blocker_hides_tensorflow_and_vllm(tmp_path):
    """Without this, the tests that use it would pass on a machine where the blocker did nothing."""
    probe = ("import importlib.util as u; print([u.find_spec(n) is None for n in ('tensorflow', 'vllm', 'numpy')]); "
             "import tensorflow")
    out = subprocess.run([sys.executable, "-c", probe], env=gpu_image_env(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[True, True, False]", out.stdout + out.stderr[-2000:]
    assert out.returncode == 1 and "ModuleNotFoundError: No module named 'tensorflow'" in out.stderr, out.stderr[-2000:]


def test_every_trainer_eval_and_gpu_benchmark_module_imports_without_tensorflow_or_vllm(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, env=gpu_image_env(tmp_path),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", out.stdout


# --- Private and moved JAX APIs: each use takes its fallback where the API is gone. ---


MASK_TYPES = types.SimpleNamespace(PADDING="padding", PADDING_CAUSAL="padding_causal")


def _fake_cudnn_module(seen: dict) -> types.SimpleNamespace:
    """A stand-in for ``jax._src.cudnn.fused_attention_stablehlo`` that records what it is given."""

    def dot_product_attention(query, key, value, bias=None, mask=None, q_seqlen=None, kv_seqlen=None,
                              q_offsets=None, kv_offsets=None, *, scale=1.0, mask_type=None, qkv_layout="BTNH"):
        seen.update(key_shape=key.shape, value_shape=value.shape, mask_type=mask_type)
        return key  # what cuDNN was given comes back out as the attention output

    return types.SimpleNamespace(dot_product_attention=dot_product_attention, MaskType=MASK_TYPES)


def test_packed_cudnn_entry_point_is_checked_against_the_call_made():
    from semcoder_jax.model import attention

    def without_offsets(query, key, value, q_seqlen=None, kv_seqlen=None, *, scale=1.0, mask_type=None,
                        qkv_layout="BTNH"):
        return query

    assert attention._packed_entry_point(_fake_cudnn_module({})) is not None
    assert attention._packed_entry_point(types.SimpleNamespace(dot_product_attention=without_offsets,
                                                               MaskType=MASK_TYPES)) is None
    no_causal = types.SimpleNamespace(dot_product_attention=_fake_cudnn_module({}).dot_product_attention,
                                      MaskType=types.SimpleNamespace(PADDING="padding"))
    assert attention._packed_entry_point(no_causal) is None
    assert attention._packed_entry_point(types.SimpleNamespace()) is None
    try:
        from jax._src.cudnn import fused_attention_stablehlo as real
    except ImportError:
        return
    assert attention._packed_entry_point(real) is real  # this JAX's own module still passes the check


def test_packed_cudnn_attention_gets_one_key_value_head_per_query_head(monkeypatch):
    """JAX up to 0.11 scaled cuDNN's ``kv_offsets`` by the query's head count, so grouped-query
    attention (fewer key/value heads) read other tokens' keys without an error."""
    import jax
    import numpy as np

    from semcoder_jax.model import attention

    seen: dict = {}
    monkeypatch.setattr(attention, "_cudnn_fa", _fake_cudnn_module(seen))
    b, s, h, kv, hd = 2, 16, 4, 2, 8
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((b, s, n, hd), np.float32) for n in (h, kv, kv))
    seg = np.broadcast_to(np.where(np.arange(s) < 10, 1, 2), (b, s)).astype(np.int32)

    def keys_given_to_cudnn(q, k, v, seg):
        return attention.dot_product_attention(q, k, v, segment_ids_q=seg, segment_ids_kv=seg, implementation="cudnn",
                                               packed=attention.packed_segments(seg, 4))

    keys = jax.jit(keys_given_to_cudnn)(q, k, v, seg)
    assert seen["key_shape"] == seen["value_shape"] == (b, s, h, hd) and seen["mask_type"] == "padding_causal"
    for i in range(h):  # query head i reads key/value head i // (h / kv), as the XLA kernel groups them
        np.testing.assert_array_equal(keys[:, :, i], k[:, :, i // (h // kv)])


def test_named_attention_residuals_are_saved_by_the_remat_policy():
    """``save_dots_attention`` keeps the packed cuDNN kernel's residuals by name. JAX's next remat
    (``JAX_REMAT3=1`` in 0.10) ignores names inside a ``custom_vjp`` and would rerun the kernel in
    the backward pass: this fails if the installed JAX made that the default."""
    import jax
    import jax.numpy as jnp
    from jax.ad_checkpoint import print_saved_residuals

    from semcoder_jax.model.attention import RESIDUAL_NAME, with_saveable_residuals

    kernel = with_saveable_residuals(lambda x: jnp.sin(x) * 2.0, RESIDUAL_NAME)
    policy = jax.checkpoint_policies.save_only_these_names(RESIDUAL_NAME)
    f = jax.checkpoint(lambda x: jnp.cos(kernel(x)).sum(), policy=policy)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_saved_residuals(f, jnp.ones(3))
    assert f"named '{RESIDUAL_NAME}'" in printed.getvalue(), printed.getvalue()


def test_splash_without_its_jax_module_is_one_clear_error(monkeypatch):
    import jax.numpy as jnp

    from semcoder_jax.errors import SemcoderError
    from semcoder_jax.model import attention

    monkeypatch.setitem(sys.modules, "jax.experimental.pallas.ops.tpu.splash_attention", None)
    x, seg = jnp.zeros((1, 128, 1, 8)), jnp.ones((1, 128), jnp.int32)
    with pytest.raises(SemcoderError, match="no TPU splash kernel.*model.attention=xla"):
        attention._splash_local(x, x, x, seg, seg, causal=True, scale=1.0)


def _hide(monkeypatch, package, name: str) -> None:
    """Make ``from package import name`` fail as it would where the module is gone."""
    monkeypatch.delattr(package, name, raising=False)
    monkeypatch.setitem(sys.modules, f"{package.__name__}.{name}", None)


def test_mesh_is_made_without_jax_experimental_mesh_utils(monkeypatch):
    import jax
    import jax.experimental

    from semcoder_jax.train.config import MeshConfig
    from semcoder_jax.train.mesh import _multi_granule_grid, create_mesh

    _hide(monkeypatch, jax.experimental, "mesh_utils")
    mesh = create_mesh(MeshConfig(data=2, fsdp=-1, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())
    multi = create_mesh(MeshConfig(data=1, fsdp=-1, tensor=1, dcn_data=2))
    assert dict(multi.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
    # TPU slices (devices with ``slice_index``): the data axis crosses slices, fsdp stays inside one.
    tpus = [types.SimpleNamespace(id=i, process_index=i // 2, slice_index=i % 2) for i in range(8)]
    grid = _multi_granule_grid(tpus, (1, 4, 1), dcn_data=2)
    assert grid.shape == (2, 4, 1) and [{d.slice_index for d in row.flat} for row in grid] == [{0}, {1}]


def test_cloud_tpu_probe_without_jax_private_module(monkeypatch):
    import jax._src

    from semcoder_jax.train import mesh

    _hide(monkeypatch, jax._src, "cloud_tpu_init")
    assert mesh._on_cloud_tpu_vm() is False  # no libtpu, no TPU chips here
    monkeypatch.setattr(mesh.importlib.util, "find_spec", lambda name: object() if name == "libtpu" else None)
    monkeypatch.setattr(mesh.glob, "glob", lambda pattern: ["/dev/accel0"] if "accel" in pattern else [])
    assert mesh._on_cloud_tpu_vm() is True
