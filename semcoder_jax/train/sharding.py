"""Logical axis names -> mesh shardings for parameters, optimiser state and batches."""

from __future__ import annotations

import logging
from typing import Any

import jax
import flax.linen as nn
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

log = logging.getLogger(__name__)

Rules = tuple[tuple[str, Any], ...]

BATCH_LOGICAL = ("activation_batch", "activation_length")


def _axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    names = axes if isinstance(axes, tuple) else (axes,)
    size = 1
    for n in names:
        size *= mesh.shape[n]
    return size


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
    """Leave a dimension unsharded where its size does not divide the mesh axes (e.g. 2 KV heads on tensor=4)."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        out.append(axes if axes is not None and dim % _axis_size(mesh, axes) == 0 else None)
    return P(*out)


def logical_to_shardings(logical: Any, shapes: Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for a tree of logical PartitionSpecs and a matching tree of shapes.

    Dimensions left unsharded because they do not divide their mesh axes are logged: a large one
    (e.g. hidden size 4096 on fsdp=48) replicates a weight and its moments on every device.
    """
    mesh_specs = nn.logical_to_mesh(logical, rules)
    is_spec = lambda x: isinstance(x, P)
    dropped: list[str] = []

    def fit(path, spec, s):
        fitted = _fit(spec, tuple(s.shape), mesh)
        lost = [f"dim {i} ({s.shape[i]}) on {a}" for i, (a, b) in enumerate(zip(spec, fitted)) if a is not None and b is None]
        if lost:
            dropped.append(f"{jax.tree_util.keystr(path)}: {', '.join(lost)}")
        return NamedSharding(mesh, fitted)

    out = jax.tree_util.tree_map_with_path(fit, mesh_specs, shapes, is_leaf=is_spec)
    if dropped:
        log.warning("left unsharded (size does not divide the mesh axes) in %d arrays: %s", len(dropped),
                    "; ".join(dropped[:8]) + (" ..." if len(dropped) > 8 else ""))
    return out


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
    return NamedSharding(mesh, nn.logical_to_mesh_axes(BATCH_LOGICAL, rules))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def opt_state_shardings(opt_state_shapes: Any, params_shardings: Any, mesh: Mesh) -> Any:
    """Moments take their parameter's sharding; everything else (counts, scalars) is replicated.

    Matching is by tree structure: each optax sub-state whose structure equals the params tree
    is given the params shardings.
    """
    params_def = jax.tree.structure(params_shardings)
    rep = replicated(mesh)

    def assign(node: Any) -> Any:
        try:
            if jax.tree.structure(node) == params_def:
                return params_shardings
        except Exception:
            pass
        return None

    def walk(node: Any) -> Any:
        got = assign(node)
        if got is not None:
            return got
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*(walk(c) for c in node))
        if isinstance(node, (tuple, list)):
            return type(node)(walk(c) for c in node)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return jax.tree.map(lambda _: rep, node)

    return walk(opt_state_shapes)
