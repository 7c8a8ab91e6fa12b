"""Typed configs: dataclasses filled from YAML and `--set key=value`; unknown keys and wrong types are errors."""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from dr4sr.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, coerced value) for a value against a field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is Any:
        return True, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        (arg, *_) = typing.get_args(tp) or (Any,)
        out = []
        for v in value:
            ok, cv = _type_ok(v, arg)
            if not ok:
                return False, value
            out.append(cv)
        return True, tuple(out) if origin is tuple else out
    if origin is dict:
        return isinstance(value, dict), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


def from_dict(cls: type, data: dict | None, prefix: str = "") -> Any:
    """Build dataclass `cls` from `data`; nested dataclass fields take nested dicts."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; valid keys under "
                          f"{prefix.rstrip('.') or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix + name!r} must be a mapping")
            kwargs[name] = from_dict(tp, value, prefix + name + ".")
            continue
        ok, coerced = _type_ok(value, tp)
        if not ok:
            tname = getattr(tp, "__name__", str(tp))
            raise ConfigError(f"config key {prefix + name!r}: expected {tname}, got {value!r}")
        kwargs[name] = coerced
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"config {prefix.rstrip('.') or cls.__name__}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def parse_overrides(items: list[str] | None) -> dict:
    """`["model.dropout=0.2", "train.lr=1e-3"]` -> nested dict; values parsed as YAML scalars."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. model.dropout=0.2)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str):
            # YAML reads 1e-3 as a string; numbers in scientific form are common here
            try:
                value = float(value) if any(c in value for c in "eE.") else value
            except ValueError:
                pass
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data
