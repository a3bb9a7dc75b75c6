"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides.

OmegaConf does the merging and type checking; this module only turns its errors into one
line that names the file and the key, and resolves named presets (``model: deepseek-coder-6.7b``
in a YAML file means ``configs/model/deepseek-coder-6.7b.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from semcoder_jax import CONFIG_DIR
from semcoder_jax.errors import SemcoderError

T = TypeVar("T")


class ConfigError(SemcoderError, ValueError):
    """A config that cannot be used: unknown key, wrong type, missing file."""


def config_dir() -> Path:
    return Path(os.environ.get("SEMCODER_CONFIG_DIR", CONFIG_DIR))


def preset_path(group: str, name: str) -> Path:
    """``configs/<group>/<name>.yaml``, or ``name`` itself when it is a path to a YAML file.

    A missing relative ``configs/<group>/<preset>.yaml`` path (the README's, given outside the
    repository root) names that shipped preset, so the documented commands work from any folder.
    """
    candidate, preset = Path(name), name
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.exists():
            return candidate
        if candidate.parts != ("configs", group, candidate.name):  # a mistyped path of one's own stays an error
            raise ConfigError(f"config file not found: {name}")
        preset = candidate.stem
    path = config_dir() / group / f"{preset}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        raise ConfigError(f"unknown {group} config {name!r} (known: {', '.join(known) or 'none'})")
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _resolve_presets(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Replace a string given for a dataclass-typed field by the preset YAML of that name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = dict(data)
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        ftype = _field_type(cls, key)
        if dataclasses.is_dataclass(ftype):
            if isinstance(value, str):
                preset = _read_preset(key, value, where)
                out[key] = _resolve_presets(ftype, preset, f"{where}:{key}")
            elif isinstance(value, dict):
                base = value.pop("preset", None) if "preset" in value else None
                nested = dict(value)
                if base is not None:
                    nested = {**_read_preset(key, base, where), **nested}
                out[key] = _resolve_presets(ftype, nested, f"{where}:{key}")
            elif value is not None:  # null is refused by OmegaConf, naming the key
                raise ConfigError(f"{where}: {key}: expected a preset name or a mapping, got {value!r}")
    return out


def _read_preset(group: str, name: str, where: str) -> dict[str, Any]:
    """The preset a file or override names, with an error that says which file and key named it."""
    try:
        return read_yaml(preset_path(group, name))
    except ConfigError as e:
        raise ConfigError(f"{where}: {group}: {e}") from None


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[name]


def _dotted_field_type(cls: type, key: str) -> Any:
    """The declared type of ``key`` (``data.path``) in ``cls``; None where no field has that name."""
    ftype: Any = cls
    for part in key.split("."):
        if not (dataclasses.is_dataclass(ftype) and part in {f.name for f in dataclasses.fields(ftype)}):
            return None
        ftype = _field_type(ftype, part)
    return ftype


_YAML_NULLS = ("", "~", "null", "Null", "NULL")


def _is_text(ftype: Any) -> bool:
    """``str`` or ``Optional[str]``: a field whose override is taken as text, not read as YAML."""
    return ftype is str or (typing.get_origin(ftype) in (typing.Union, types.UnionType)
                            and set(typing.get_args(ftype)) == {str, type(None)})


def _split_overrides(cls: type, overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Preset overrides (``model=deepseek-coder-1.3b``) are applied before the dotlist.

    ``key=`` on a string field means the empty string (OmegaConf's dotlist reads it as null,
    which a ``str`` field refuses), so ``data.path=`` selects synthetic data as documented. Any
    other unquoted value of a string field is its text as typed, where YAML would read
    ``run_dir=yes`` as ``True``, ``0755`` as 493 and cut ``runs/a #1`` at the ``#``; null still
    means None for an optional one, and ``${...}`` still interpolates.
    """
    presets: dict[str, Any] = {}
    rest: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if "." not in key and key in {f.name for f in dataclasses.fields(cls)}:
            if dataclasses.is_dataclass(_field_type(cls, key)):
                presets[key] = value
                continue
        ftype = _dotted_field_type(cls, key)
        if value == "" and ftype is str:
            item = f"{key}=''"
        elif _is_text(ftype) and value not in _YAML_NULLS and value[:1] not in ("'", '"'):
            item = f"{key}={json.dumps(value, ensure_ascii=False)}"  # a YAML string that reads back as the text
        rest.append(item)
    return presets, rest


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> T:
    """Build ``cls`` from its defaults, then ``base``, the YAML file at ``path``, then overrides."""
    where = str(path) if path is not None else "<defaults>"
    try:
        merged = OmegaConf.structured(cls)
        layers: list[tuple[str, dict[str, Any]]] = []
        if base:
            layers.append(("<base>", _resolve_presets(cls, base, "<base>")))
        if path is not None:
            layers.append((where, _resolve_presets(cls, read_yaml(path), where)))
        presets, dotlist = _split_overrides(cls, overrides)
        if presets:
            layers.append(("<overrides>", _resolve_presets(cls, presets, "<overrides>")))
        for source, layer in layers:
            where = source
            merged = OmegaConf.merge(merged, OmegaConf.create(layer))
        where = "<overrides>"
        if dotlist:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(dotlist)))
        # ``${...}`` resolves here, in whichever layer it was written
        sources = [name for name, given in (("<base>", base), (str(path), path is not None), ("<overrides>", overrides)) if given]
        where = " + ".join(sources) or "<defaults>"
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where}: {_one_line(e)}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj  # type: ignore[return-value]


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _one_line(e: OmegaConfBaseException) -> str:
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else type(e).__name__
    key = getattr(e, "full_key", None)
    if key and key not in first:
        first = f"{first} (key: {key})"
    return first
