"""The checkpoint layout shared by the trainer, the converter and the sampler.

A checkpoint is an Orbax ``CheckpointManager`` directory; each step folder holds the items
``params`` (the model's param tree, ``StandardSave``) and ``model_config`` (``JsonSave`` of the
``ModelConfig`` fields), and a training run adds ``opt_state`` and ``data_state``. A params-only
Orbax PyTree checkpoint (a folder with ``_METADATA``, no steps) is also read, with its model
config in a ``model_config.json`` inside it or beside it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import ModelConfig

PARAMS_ITEM = "params"
MODEL_CONFIG_ITEM = "model_config"
MODEL_CONFIG_FILE = "model_config.json"


def is_pytree_checkpoint(directory: str | Path) -> bool:
    """A params-only Orbax PyTree checkpoint rather than a manager directory of steps."""
    return (Path(directory) / "_METADATA").exists()


# Orbax's warnings at every read-only look-up: noise that reads like an error (the folder is fine).
_READ_ONLY_NOISE = ("Given directory is read only", "CheckpointManagerOptions.read_only=True",
                    "Metadata file does not exist")


class _ReadOnlyNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_READ_ONLY_NOISE)


def quiet_orbax_warnings() -> None:
    """Drop Orbax's read-only look-up warnings ("Given directory is read only", a missing optional
    metadata file), and only those: its other warnings (a failing save) still show."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _ReadOnlyNoise) for f in absl_logger.filters):
        absl_logger.addFilter(_ReadOnlyNoise())


def _manager(directory: Path):
    import orbax.checkpoint as ocp

    quiet_orbax_warnings()

    options = ocp.CheckpointManagerOptions(create=False, read_only=True)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def latest_step(directory: str | Path) -> int | None:
    """The newest finished step of a manager directory; ``None`` when it has none."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    return _manager(directory).latest_step()


def resolve_step(directory: str | Path, step: int | None = None) -> int:
    directory = Path(directory)
    if not directory.is_dir():
        raise SemcoderError(f"checkpoint {directory}: not a directory")
    steps = _manager(directory).all_steps()
    if not steps:
        hint = f"; a run folder? its checkpoints are in {directory / 'checkpoints'}" if (directory / "checkpoints").is_dir() else ""
        raise SemcoderError(f"checkpoint {directory}: no finished steps (and no _METADATA of a params-only checkpoint){hint}")
    if step is None:
        return max(steps)
    if step not in steps:
        raise SemcoderError(f"checkpoint {directory}: no step {step} (have {', '.join(map(str, sorted(steps)))})")
    return step


def params_path(directory: str | Path, step: int | None = None) -> tuple[Path, int | None]:
    """The Orbax PyTree folder holding the params, and the step it belongs to."""
    directory = Path(directory).absolute()
    if is_pytree_checkpoint(directory):
        if step is not None:
            raise SemcoderError(f"checkpoint {directory}: a params-only checkpoint has no steps, but step {step} was asked for")
        return directory, None
    step = resolve_step(directory, step)
    path = directory / str(step) / PARAMS_ITEM
    if not path.is_dir():
        raise SemcoderError(f"checkpoint {directory}: step {step} has no {PARAMS_ITEM!r} item")
    return path, step


def read_model_config(directory: str | Path, step: int | None = None) -> ModelConfig:
    directory = Path(directory).absolute()
    if is_pytree_checkpoint(directory):
        for candidate in (directory / MODEL_CONFIG_FILE, directory.parent / MODEL_CONFIG_FILE):
            if candidate.exists():
                return _model_config_from_text(candidate.read_text(), str(candidate))
        raise SemcoderError(f"checkpoint {directory}: params-only checkpoint without {MODEL_CONFIG_FILE} inside or beside it")
    import orbax.checkpoint as ocp

    step = resolve_step(directory, step)
    if not (directory / str(step) / MODEL_CONFIG_ITEM).is_dir():
        raise SemcoderError(f"checkpoint {directory}: step {step} has no {MODEL_CONFIG_ITEM!r} item")
    restored = _manager(directory).restore(
        step, args=ocp.args.Composite(**{MODEL_CONFIG_ITEM: ocp.args.JsonRestore()})
    )
    return _model_config_from_dict(restored[MODEL_CONFIG_ITEM], f"{directory}/{step}/{MODEL_CONFIG_ITEM}")


def _model_config_from_text(text: str, where: str) -> ModelConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SemcoderError(f"{where}: invalid JSON ({e})") from None
    return _model_config_from_dict(data, where)


def _model_config_from_dict(data: Any, where: str) -> ModelConfig:
    if not isinstance(data, dict):
        raise SemcoderError(f"{where}: model config must be a JSON object")
    try:
        return ModelConfig.from_json(json.dumps(data))
    except SemcoderError as e:
        raise SemcoderError(f"{where}: {e}") from None
    except TypeError as e:
        raise SemcoderError(f"{where}: {e}") from None


def save_params(directory: str | Path, step: int, params: Any, model_config: ModelConfig) -> None:
    """Write ``params`` and ``model_config`` as step ``step`` of a manager directory (blocking)."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager(Path(directory).absolute(), options=options) as manager:
        manager.save(step, args=ocp.args.Composite(**{
            PARAMS_ITEM: ocp.args.StandardSave(params),
            MODEL_CONFIG_ITEM: ocp.args.JsonSave(dataclasses.asdict(model_config)),
        }), force=True)
        manager.wait_until_finished()


def params_metadata(path: Path) -> Any:
    """A tree like the params with ``shape``/``dtype`` leaves, read from Orbax metadata (no data)."""
    import orbax.checkpoint as ocp

    meta = ocp.PyTreeCheckpointer().metadata(path)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    return tree


def load_params(
    directory: str | Path,
    step: int | None = None,
    *,
    dtype: Any = None,
    sharding: Any = None,
) -> tuple[Any, ModelConfig]:
    """Params as ``jax.Array`` s and the model config of a checkpoint.

    ``dtype`` casts while reading; ``sharding`` (one ``jax.sharding.Sharding`` or a tree like the
    params) places each array directly, so a large model is never gathered on one device.
    """
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    path, step = params_path(directory, step)
    config = read_model_config(directory, step)
    meta = params_metadata(path)
    leaves, treedef = jax.tree.flatten(meta, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype"))
    if sharding is None or isinstance(sharding, jax.sharding.Sharding):
        one = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = [one] * len(leaves)
    else:
        shardings = treedef.flatten_up_to(sharding)
    target = treedef.unflatten([
        jax.ShapeDtypeStruct(tuple(m.shape), jnp.dtype(dtype) if dtype is not None else m.dtype, sharding=s)
        for m, s in zip(leaves, shardings)
    ])
    params = ocp.StandardCheckpointer().restore(path, target)
    if dtype is not None:
        config = dataclasses.replace(config, param_dtype=jnp.dtype(dtype).name)
    return params, config
