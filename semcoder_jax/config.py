"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides.

OmegaConf does the merging and type checking; this module turns bad input (unknown keys, wrong
types, duplicate YAML keys, unreadable files) into one line that names the file and the key, and
resolves named presets (``model: deepseek-coder-6.7b`` in a YAML file means
``configs/model/deepseek-coder-6.7b.yaml``), each of which replaces its whole section.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import os
import re
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
    if not (config_dir() / group).is_dir():
        raise ConfigError(f"there are no {group} presets, so {name!r} names none; give {group} as a mapping "
                          f"(or {group}.KEY=VALUE overrides)")
    if not path.exists():
        known = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        raise ConfigError(f"unknown {group} config {name!r} (known: {', '.join(known) or 'none'})")
    return path


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice or read as a non-string is an error: PyYAML keeps the
    last of two equal keys silently, and reads ``on:``/``yes:``/``1:`` as keys ``True``/``1``."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` may be overridden by explicit keys
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise _YamlKeyError(line, f"key {key_node.value!r} is read as {type(key).__name__} {key!r}, not text; quote it")
            if key in seen:
                raise _YamlKeyError(line, f"duplicate key {key!r} (first given on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep)


class _YamlKeyError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty file: ``{}``); anything else is one line naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except _YamlKeyError as e:
        raise ConfigError(f"{path}, line {e.line}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{at}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {_first_line(str(e))}") from None
    if data is None:  # empty, or only comments
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values, got {type(data).__name__} {_short(data)}")
    return data


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclasses.dataclass
class _Reset:
    """Put the section at ``path`` back to its default: a named preset replaces the whole section."""

    path: str


@dataclasses.dataclass
class _Merge:
    """Merge ``data`` into the section at ``path`` ("" is the top level); errors name ``where``."""

    path: str
    data: dict[str, Any]
    where: str


def _expand(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> list[_Reset | _Merge]:
    """The steps that apply one layer (a file, a preset, the overrides) to the merged config.

    A string given for a dataclass-typed field (``model: deepseek-coder-6.7b``) or a mapping with a
    ``preset`` key names a preset; the section is reset to its defaults and filled from the preset,
    so nothing set by an earlier layer (or the preset it replaces) survives. The mapping's other keys
    then apply on top of the preset.
    """
    fields = [f.name for f in dataclasses.fields(cls)]
    steps: list[_Reset | _Merge] = []
    plain = dict(data)
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: {_unknown_key(prefix.rstrip('.'), key, fields)}")
        if not dataclasses.is_dataclass(ftype := _field_type(cls, key)):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, str):
            steps += [_Reset(path), *_expand_preset(ftype, key, value, where, path)]
            del plain[key]
        elif isinstance(value, dict):
            nested = dict(value)
            name = nested.pop("preset", None)
            if name is not None:
                if not isinstance(name, str):
                    raise ConfigError(f"{where}: {path}.preset: expected a preset name, got {name!r}")
                steps += [_Reset(path), *_expand_preset(ftype, key, name, where, path)]
            steps += _expand(ftype, nested, where, f"{path}.")
            del plain[key]
        elif value is not None:  # null is refused by OmegaConf, naming the key
            raise ConfigError(f"{where}: {path}: expected a preset name or a mapping, got {value!r}")
    return [*steps, _Merge(prefix.rstrip("."), plain, where)]


def _expand_preset(ftype: type, key: str, name: str, where: str, path: str) -> list[_Reset | _Merge]:
    """The steps of the preset ``name`` of ``key``'s group, with errors naming the file that named it.

    A dataclass may read its presets itself with a ``preset_data(name) -> (mapping, source)``
    classmethod (the model config reads a Hugging Face ``config.json`` too); else the preset is
    ``configs/<key>/<name>.yaml`` or a YAML path.
    """
    try:
        reader = getattr(ftype, "preset_data", None)
        if callable(reader):
            data, source = reader(name)
        else:
            file = preset_path(key, name)
            data, source = read_yaml(file), str(file)
    except ConfigError as e:
        raise ConfigError(f"{where}: {key}: {e}") from None
    return _expand(ftype, data, f"{source} ({path}: {name} in {where})", f"{path}.")


def _field_type(cls: type, name: str) -> Any:
    return _type_hints(cls)[name]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dotted_field_type(cls: type, key: str) -> Any:
    """The declared type of ``key`` (``data.path``) in ``cls``; None where no field has that name."""
    ftype: Any = cls
    for part in key.split("."):
        if not (dataclasses.is_dataclass(ftype) and part in {f.name for f in dataclasses.fields(ftype)}):
            return None
        ftype = _field_type(ftype, part)
    return ftype


_YAML_NULLS = ("", "~", "null", "Null", "NULL")


def _optional(ftype: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``Optional[T]``, else ``(ftype, False)``."""
    if typing.get_origin(ftype) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ftype) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(ftype)) == 2:
            return args[0], True
    return ftype, False


def _is_text(ftype: Any) -> bool:
    """``str`` or ``Optional[str]``: a field whose override is taken as text, not read as YAML."""
    return _optional(ftype)[0] is str


def _check_override_key(cls: type, key: str) -> None:
    """An override's key names a field: one into a list (``wandb.tags.0=x``) or a number
    (``optimizer.lr.x=1``) and a misspelt one are errors naming it, not a merge error or a traceback."""
    ftype: Any = cls
    parts = key.split(".")
    for i, part in enumerate(parts):
        owner = ".".join(parts[:i])
        if not dataclasses.is_dataclass(ftype):
            inner, _ = _optional(ftype)
            if typing.get_origin(inner) is list or inner is list:
                raise ConfigError(f"<overrides>: {key}: {owner} is a list; give it whole, e.g. {owner}=[a,b]")
            raise ConfigError(f"<overrides>: {key}: {owner} is a value ({_type_name(ftype)}), not a section with keys")
        names = [f.name for f in dataclasses.fields(ftype)]
        if part not in names:
            raise ConfigError(f"<overrides>: {_unknown_key(owner, part, names)}")
        ftype = _field_type(ftype, part)


def _unknown_key(owner: str, key: str, names: Sequence[str]) -> str:
    full = f"{owner}.{key}" if owner else key
    close = difflib.get_close_matches(key, names, n=1) or [n for n in names if key and n.startswith(key)][:1]
    hint = f" (did you mean '{owner + '.' if owner else ''}{close[0]}'?)" if close else ""
    return f"unknown key '{full}'{hint}"


def _type_name(ftype: Any) -> str:
    return getattr(ftype, "__name__", None) or str(ftype).replace("typing.", "")


def _list_override(key: str, value: str, ftype: Any) -> str | None:
    """The override ``key=value`` of a list field as a YAML list, or None when ``ftype`` is no list.

    The items of a list of strings keep their text as typed, as a string field's value does
    (``wandb.tags=[yes,0755]`` is ``["yes", "0755"]``, not ``["True", "493"]``); ``key=`` is the
    empty list; a value that is not a list is an error naming the key.
    """
    inner, optional = _optional(ftype)
    if not (typing.get_origin(inner) is list or inner is list):
        return None
    if optional and value in _YAML_NULLS[1:]:
        return f"{key}=null"
    if value == "":
        return f"{key}=[]"
    (item_type,) = typing.get_args(inner) or (Any,)
    try:
        parsed = yaml.load(value, Loader=yaml.BaseLoader if item_type is str else yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"<overrides>: {key}: invalid list {value!r}: {getattr(e, 'problem', None) or _first_line(str(e))}") from None
    if not isinstance(parsed, list):
        raise ConfigError(f"<overrides>: {key}: expected a list such as {key}=[a,b], got {value!r}")
    if item_type is str:
        bad = [v for v in parsed if not isinstance(v, str)]
        if bad:
            raise ConfigError(f"<overrides>: {key}: expected a list of strings, got the item {bad[0]!r}")
        return f"{key}={json.dumps(parsed, ensure_ascii=False)}"
    return f"{key}={value}"


def _split_overrides(cls: type, overrides: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Preset overrides (``model=deepseek-coder-1.3b``) and the dotlist for the other keys.

    A preset override replaces the whole section (see ``load_config`` for the order). ``key=`` on a
    string field means the empty string (OmegaConf's dotlist reads it as null, which a ``str``
    field refuses), so ``data.path=`` selects synthetic data as documented. Any other unquoted
    value of a string field is its text as typed, where YAML would read ``run_dir=yes`` as
    ``True``, ``0755`` as 493 and cut ``runs/a #1`` at the ``#``; null still means None for an
    optional one, and ``${...}`` still interpolates.
    """
    presets: list[tuple[str, str]] = []
    rest: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        if key.endswith(".preset") and dataclasses.is_dataclass(_dotted_field_type(cls, key.removesuffix(".preset"))):
            key = key.removesuffix(".preset")  # as ``model: {preset: NAME}`` is written in a file
        _check_override_key(cls, key)
        ftype = _dotted_field_type(cls, key)
        if dataclasses.is_dataclass(ftype):
            presets.append((key, value))
            continue
        listed = _list_override(key, value, ftype)
        if listed is not None:
            item = listed
        elif value == "" and ftype is str:
            item = f"{key}=''"
        elif _is_text(ftype) and value not in _YAML_NULLS and value[:1] not in ("'", '"'):
            item = f"{key}={json.dumps(value, ensure_ascii=False)}"  # a YAML string that reads back as the text
        rest.append(item)
    return presets, rest


def _nest(path: str, data: dict[str, Any]) -> dict[str, Any]:
    for part in reversed(path.split(".") if path else []):
        data = {part: data}
    return data


def _reset(merged: Any, cls: type, path: str) -> None:
    """Set the section at ``path`` to its default value (the field's default in its parent's)."""
    *parents, last = path.split(".")
    default: Any = None
    for part in path.split("."):
        if default is not None:
            default = getattr(default, part)
            continue
        field = next(f for f in dataclasses.fields(cls) if f.name == part)
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        elif field.default is not dataclasses.MISSING:
            default = copy.deepcopy(field.default)
        else:
            cls = _field_type(cls, part)
    parent = merged
    for part in parents:
        parent = parent[part]
    parent[last] = OmegaConf.structured(default if default is not None else cls)


def escape_interpolations(value: Any) -> Any:
    """``value`` with every ``${`` escaped, so that OmegaConf reads its strings back as they are."""
    if isinstance(value, str):
        return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: escape_interpolations(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_interpolations(v) for v in value]
    return value


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: dict[str, Any] | None = None,
) -> T:
    """Build ``cls`` from its defaults, then ``base`` (values taken literally), the YAML file at
    ``path``, then overrides.

    A named preset replaces its whole section, wherever it is given: ``model=deepseek-coder-1.3b``
    over a file that says ``model: deepseek-coder-6.7b`` gives exactly the 1.3B preset, none of the
    file's other ``model`` keys. Preset overrides apply first, in command-line order, then every
    ``key=value`` override on top of them, in command-line order too, wherever it stands: so
    ``mesh.dcn_data=2 mesh=gpu-8x-h100`` (as the SLURM script passes them) keeps ``dcn_data=2``.
    """
    steps: list[_Reset | _Merge] = []
    if base:
        steps += _expand(cls, escape_interpolations(base), "<base>")
    if path is not None:
        steps += _expand(cls, read_yaml(path), str(path))
    presets, dotlist = _split_overrides(cls, overrides)
    for key, value in presets:
        steps += [_Reset(key), *_expand_preset(_dotted_field_type(cls, key), key.rpartition(".")[2], value,
                                               "<overrides>", key)]
    where = "<defaults>"
    try:
        merged = OmegaConf.structured(cls)
        touched: set[str] = set()  # a section no step has set is at its defaults already (a reset is slow)
        for step in steps:  # in place: OmegaConf.merge copies the whole config each time
            if isinstance(step, _Reset):
                if any(t == step.path or t.startswith(f"{step.path}.") or step.path.startswith(f"{t}.") for t in touched):
                    _reset(merged, cls, step.path)
                    touched = {t for t in touched if not t.startswith(f"{step.path}.") and t != step.path}
            elif step.data:
                where = step.where
                merged.merge_with(OmegaConf.create(_nest(step.path, step.data)))
                touched |= {f"{step.path}.{k}" if step.path else k for k in step.data}
        where = "<overrides>"
        if dotlist:
            merged.merge_with(OmegaConf.from_dotlist(list(dotlist)))
        # ``${...}`` resolves here, in whichever layer it was written
        sources = [name for name, given in (("<base>", base), (str(path), path is not None), ("<overrides>", overrides)) if given]
        where = " + ".join(sources) or "<defaults>"
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where}: {_one_line(e)}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:  # the key is in the message; the sources say where to change it
            raise ConfigError(f"{where}: {e}") from None
    return obj  # type: ignore[return-value]


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_config(config: Any) -> str:
    """``config`` as YAML that ``load_config`` reads back to an equal config (``--print-config``,
    a run's ``config.yaml``): strings that look like numbers, booleans or null are quoted, and a
    literal ``${`` is escaped so that it is not read as an interpolation."""
    return yaml.safe_dump(escape_interpolations(to_dict(config)), sort_keys=False, allow_unicode=True)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(dump_config(config), encoding="utf-8")


def _one_line(e: OmegaConfBaseException) -> str:
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else type(e).__name__
    key = getattr(e, "full_key", None)
    if key and key not in first:
        first = f"{first} (key: {key})"
    return first
