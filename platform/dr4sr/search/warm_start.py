"""`search.warm_start`: points a TPE study evaluates before the sampler proposes its own.

Each point is a mapping of every dimension key to a value that dimension allows; the points reach
Optuna through OptunaSearch's `points_to_evaluate` (Optuna enqueues them, so they are the study's first
trials and TPE then learns from their results). A point is checked here, before anything runs, so a typo
stops with `FILE: search.warm_start[i].KEY: ...` rather than inside Optuna.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dr4sr.errors import ConfigError


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_value(dim, value: Any) -> str | None:
    """Why `value` is outside the dimension, or None when it fits."""
    if dim.kind in ("choice", "grid"):
        return None if value in dim.values else f"{value!r} is not one of {list(dim.values)}"
    if dim.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"expected an integer, got {value!r}"
        if not dim.low <= value <= dim.high or (value - dim.low) % dim.step:
            return f"{value!r} is outside int [{dim.low}, {dim.high}] step {dim.step}"
        return None
    if not _number(value) or not dim.low <= value <= dim.high:
        return f"{value!r} is outside {dim.kind} [{dim.low}, {dim.high}]"
    return None


def parse_warm_start(path: Path, raw: Any, dimensions: tuple, kind: str) -> list[dict]:
    """The points of `search.warm_start`, in order; every dimension given, every value in its range."""
    if raw is None:
        return []
    where = f"{path}: search.warm_start"
    if kind != "optuna":
        raise ConfigError(f"{where}: only search.kind optuna takes warm-start points (a grid runs every point)")
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of mappings (dimension key -> value), got {raw!r}")
    dims = {d.key: d for d in dimensions}
    points = []
    for i, point in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(point, dict):
            raise ConfigError(f"{at}: expected a mapping of dimension key -> value, got {point!r}")
        for key, value in point.items():
            if key not in dims:
                raise ConfigError(f"{at}.{key}: not a dimension of this space; expected some of {list(dims)}")
            why = check_value(dims[key], value)
            if why:
                raise ConfigError(f"{at}.{key}: {why}")
        missing = [k for k in dims if k not in point]
        if missing:  # Ray's OptunaSearch takes only whole points
            raise ConfigError(f"{at}: missing dimension {missing[0]!r}; a warm-start point gives every dimension")
        points.append({k: float(point[k]) if dims[k].kind in ("uniform", "loguniform") else dims[k].cast(point[k])
                       for k in dims})
    return points


def check_points(space, check_run) -> None:
    """Each point as a whole builds valid configs (its values were checked one by one already)."""
    from dr4sr.config import deep_merge
    from dr4sr.search.space import RUN_KEYS, nest

    for i, point in enumerate(space.search.warm_start):
        run, overrides = {"backbone": space.backbone, "dataset": space.dataset}, space.fixed
        for key, value in point.items():
            if key in RUN_KEYS:
                run[key] = value
            else:
                overrides = deep_merge(overrides, nest(key, value))
        try:
            check_run(str(run["backbone"]), str(run["dataset"]), overrides, space.preset)
        except ConfigError as exc:
            raise ConfigError(f"{space.path}: search.warm_start[{i}]: {exc}") from None
