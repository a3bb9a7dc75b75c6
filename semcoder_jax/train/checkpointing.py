"""Orbax checkpoints of a training run: items ``params``, ``opt_state``, ``data_state``, ``model_config``.

The step folders follow the project's checkpoint layout (``semcoder_jax.checkpoint``), so
``semcoder convert orbax-to-hf`` and the sampler read a training run directly. Restores go
through abstract targets that carry the *current* shardings, so a run may resume on another mesh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from semcoder_jax.model.config import ModelConfig
from semcoder_jax.train.config import CheckpointConfig

try:  # the layout's owner; the names are part of the contract either way
    from semcoder_jax.checkpoint import MODEL_CONFIG_ITEM, PARAMS_ITEM
except ImportError:  # pragma: no cover - before the checkpoint module lands
    PARAMS_ITEM, MODEL_CONFIG_ITEM = "params", "model_config"
OPT_STATE_ITEM = "opt_state"
DATA_STATE_ITEM = "data_state"
ITEMS = (PARAMS_ITEM, OPT_STATE_ITEM, DATA_STATE_ITEM, MODEL_CONFIG_ITEM)


def open_manager(directory: str | Path, cfg: CheckpointConfig) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg.keep,
        enable_async_checkpointing=cfg.async_save,
        create=True,
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options, item_names=ITEMS)


def save(manager: ocp.CheckpointManager, step: int, params: Any, opt_state: Any,
         data_state: dict[str, Any], model_config: ModelConfig) -> bool:
    args = ocp.args.Composite(**{
        PARAMS_ITEM: ocp.args.StandardSave(params),
        OPT_STATE_ITEM: ocp.args.StandardSave(opt_state),
        DATA_STATE_ITEM: ocp.args.JsonSave(data_state),
        MODEL_CONFIG_ITEM: ocp.args.JsonSave(dataclasses.asdict(model_config)),
    })
    return manager.save(step, args=args, force=True)


def abstract_like(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def restore(manager: ocp.CheckpointManager, step: int, abstract_params: Any,
            abstract_opt_state: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Params and optimiser state laid out by the abstract targets' shardings, and the data position."""
    got = manager.restore(step, args=ocp.args.Composite(**{
        PARAMS_ITEM: ocp.args.StandardRestore(abstract_params),
        OPT_STATE_ITEM: ocp.args.StandardRestore(abstract_opt_state),
        DATA_STATE_ITEM: ocp.args.JsonRestore(),
    }))
    return got[PARAMS_ITEM], got[OPT_STATE_ITEM], got[DATA_STATE_ITEM]
