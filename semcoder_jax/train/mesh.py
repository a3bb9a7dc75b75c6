"""The device mesh (axes data, fsdp, tensor) and multi-host start-up."""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from semcoder_jax.config import ConfigError
from semcoder_jax.train.config import MESH_AXES, MeshConfig

log = logging.getLogger(__name__)


def maybe_initialize_distributed() -> bool:
    """``jax.distributed.initialize()`` on TPU pods and under SLURM/multi-process launches.

    JAX detects the coordinator itself on Cloud TPU and SLURM; a single-host GPU/CPU run is left alone.
    """
    multi_env = (
        _on_cloud_tpu_vm()
        or int(os.environ.get("SLURM_NTASKS", "1")) > 1
        or len([w for w in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if w]) > 1
        or os.environ.get("MEGASCALE_COORDINATOR_ADDRESS")
        or os.environ.get("JAX_COORDINATOR_ADDRESS")
    )
    if not multi_env:
        return False
    kwargs = {}
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        missing = [v for v in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID") if not os.environ.get(v, "").strip().isdigit()]
        if missing:
            raise ConfigError(f"JAX_COORDINATOR_ADDRESS is set, so {' and '.join(missing)} must be set too "
                              "(a process count and this process's index, from 0)")
        kwargs = dict(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    jax.distributed.initialize(**kwargs)
    log.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())
    return True


def _on_cloud_tpu_vm() -> bool:
    """JAX's own finding at import (TPU chips and libtpu present). A TPU VM pod's workers have no
    environment naming each other: JAX finds them in the VM metadata, so this alone can tell.

    The finding lives in a private module (``jax._src``); where a JAX release moves or renames it,
    the same test is made here: libtpu installed and TPU chips present (accel or vfio devices).
    """
    try:
        from jax._src import cloud_tpu_init

        return bool(cloud_tpu_init.running_in_cloud_tpu_vm)
    except (ImportError, AttributeError):
        return importlib.util.find_spec("libtpu") is not None and bool(
            glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*"))


def resolve_axis_sizes(cfg: MeshConfig, num_devices: int) -> dict[str, int]:
    """Per-slice sizes with ``-1`` filled in; raises ``ConfigError`` when they don't divide."""
    if num_devices % cfg.dcn_data:
        raise ConfigError(f"mesh: dcn_data={cfg.dcn_data} does not divide the {num_devices} devices")
    per_slice = num_devices // cfg.dcn_data
    sizes = {"data": cfg.data, "fsdp": cfg.fsdp, "tensor": cfg.tensor}
    known = int(np.prod([s for s in sizes.values() if s != -1]))
    if per_slice % known:
        raise ConfigError(
            f"mesh: data={cfg.data} x fsdp={cfg.fsdp} x tensor={cfg.tensor} does not divide the "
            f"{per_slice} devices per slice ({num_devices} devices, dcn_data={cfg.dcn_data})"
        )
    for name, s in sizes.items():
        if s == -1:
            sizes[name] = per_slice // known
    total = int(np.prod(list(sizes.values())))
    if total != per_slice:
        raise ConfigError(
            f"mesh: data={sizes['data']} x fsdp={sizes['fsdp']} x tensor={sizes['tensor']} = {total} "
            f"devices, but there are {per_slice} per slice (set one axis to -1 to use the rest)"
        )
    return sizes


def create_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``Mesh`` with axes (data, fsdp, tensor); ``dcn_data`` multiplies the data axis across slices."""
    if devices is None:
        devices = jax.devices()
        if cfg.num_devices != -1:
            if cfg.num_devices > len(devices) or cfg.num_devices < 1:
                raise ConfigError(f"mesh.num_devices={cfg.num_devices} but {len(devices)} devices are available")
            devices = devices[: cfg.num_devices]
    devices = list(devices)
    sizes = resolve_axis_sizes(cfg, len(devices))
    shape = tuple(sizes[a] for a in MESH_AXES)
    if cfg.dcn_data > 1:
        grid = _multi_granule_grid(devices, shape, cfg.dcn_data)
    else:
        try:  # topology-aware order where JAX knows one; ImportError: a JAX without the module
            from jax.experimental import mesh_utils

            grid = mesh_utils.create_device_mesh(shape, devices=devices)
        except (ImportError, ValueError, NotImplementedError, AssertionError):
            grid = np.asarray(devices).reshape(shape)
    return Mesh(grid, MESH_AXES)


def _multi_granule_grid(devices: list[jax.Device], shape: tuple[int, ...], dcn_data: int) -> np.ndarray:
    """Devices for (dcn_data x data, fsdp, tensor): TPU slices via ``slice_index``, GPU nodes by host.

    Only the data axis crosses the slow network; fsdp and tensor stay inside a slice or node.
    """
    slices = hasattr(devices[0], "slice_index")
    if slices:
        try:
            from jax.experimental import mesh_utils

            return mesh_utils.create_hybrid_device_mesh(shape, (dcn_data, 1, 1), devices=devices)
        except ImportError:  # a JAX without the module: slices in order, as hosts are below
            pass
    ordered = sorted(devices, key=lambda d: (d.slice_index if slices else d.process_index, d.id))
    grid = np.asarray(ordered, dtype=object).reshape((dcn_data,) + shape)
    return grid.reshape((dcn_data * shape[0],) + shape[1:])
