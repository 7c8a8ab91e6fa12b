"""Search spaces: `search_spaces/*.yaml` read into typed objects and checked against the real configs.

A space names the `dr4sr run` it varies (dataset, backbone, variant, fixed `set:` keys), its
dimensions (each a `dr4sr run` config key such as `regenerate.gamma`, or `dataset`/`backbone`/
`variant` themselves), how to search them (`search.kind`: grid | optuna, with ASHA settings), and the
validation metric that ranks trials. Every value a dimension can take is validated by building the
configs it would produce, before anything runs, so a typo stops with `FILE: dimensions.KEY: ...`.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from dr4sr.config import deep_merge, from_dict, load_yaml
from dr4sr.errors import ConfigError
from dr4sr.train.config import VALID_METRICS

KINDS = ("choice", "uniform", "loguniform", "int", "grid")
RUN_KEYS = ("dataset", "backbone", "variant")  # dimensions that pick the run itself, not a config key
TOP_KEYS = {"name", "description", "dataset", "backbone", "variant", "composition", "workers", "metric",
            "preset", "set", "search", "dimensions"}


@dataclasses.dataclass
class AshaConfig:
    max_t: int = 0  # top rung in epochs; 0 = the trials' train.max_epochs
    grace_period: int = 1  # epochs every trial runs before it can be stopped
    reduction_factor: int = 2

    def validate(self) -> None:
        if self.max_t < 0 or self.grace_period < 1 or self.reduction_factor < 2:
            raise ConfigError("search.asha: need max_t >= 0, grace_period >= 1, reduction_factor >= 2")


@dataclasses.dataclass
class SearchConfig:
    kind: str = "grid"  # grid: every combination of the `grid` dimensions; optuna: TPE over the others
    num_trials: int = 0  # optuna only (grid runs every point)
    seed: int = 0  # TPE sampler seed
    max_concurrent: int = 1  # trials at once (each takes one CPU, or its Ray Train workers)
    asha: AshaConfig | None = None  # early stopping of bad trials on the per-epoch validation metric
    storage: str | None = None  # Optuna storage (SQLAlchemy URL); None: SQLite in the study folder
    warm_start: list[dict] = dataclasses.field(default_factory=list)  # optuna: points run first, in order

    def validate(self) -> None:
        if self.kind not in ("grid", "optuna"):
            raise ConfigError(f"search.kind must be 'grid' or 'optuna', got {self.kind!r}")
        if self.kind == "optuna" and self.num_trials < 1:
            raise ConfigError("search.num_trials must be >= 1 for kind optuna")
        if self.max_concurrent < 1:
            raise ConfigError("search.max_concurrent must be >= 1")


@dataclasses.dataclass(frozen=True)
class Dimension:
    key: str  # a `dr4sr run` config key (section.key[.sub]) or one of RUN_KEYS
    kind: str
    values: tuple = ()  # choice / grid
    low: float = 0.0  # uniform / loguniform / int
    high: float = 0.0
    step: int = 1  # int only

    def candidates(self) -> list:
        """Values to validate: every listed value, or the range's ends."""
        return list(self.values) if self.values else [self.cast(self.low), self.cast(self.high)]

    def cast(self, v):
        return int(v) if self.kind == "int" else v


@dataclasses.dataclass
class SearchSpace:
    path: Path
    name: str
    dataset: str
    backbone: str = "sasrec"
    variant: str = "dr4sr"
    composition: str = "regenerated+mined+original"
    workers: int = 1
    metric: str = "ndcg@20"  # validation metric; test metrics never choose a trial
    fixed: dict = dataclasses.field(default_factory=dict)  # nested `dr4sr run` overrides
    preset: str | None = None  # a dr4sr.presets name or path under `fixed` (e.g. paper-era)
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    dimensions: tuple[Dimension, ...] = ()
    notes: list[str] = dataclasses.field(default_factory=list)  # what could not be validated, and why

    @property
    def objective(self) -> str:
        return f"valid_{self.metric}"

    def grid_points(self) -> list[dict]:
        """Every combination of the dimensions (kind grid), as {key: value}, in the order Tune runs them:
        the first dimension varies fastest (so a sweep's `train.seed` listed last finishes seed 0 first)."""
        dims = [d for d in self.dimensions if d.kind == "grid"]
        combos = itertools.product(*[d.values for d in reversed(dims)])
        return [dict(zip([d.key for d in dims], reversed(combo))) for combo in combos]

    def with_run(self, dataset: str | None = None, backbone: str | None = None) -> "SearchSpace":
        """The space for one (dataset, backbone) cell: those dimensions become fixed."""
        dims = tuple(d for d in self.dimensions if not ((d.key == "dataset" and dataset) or
                                                       (d.key == "backbone" and backbone)))
        return dataclasses.replace(self, dataset=dataset or self.dataset, backbone=backbone or self.backbone,
                                   dimensions=dims)

    def point_request(self, point: dict) -> tuple[dict, dict]:
        """(run settings, nested overrides) of one trial: fixed settings <- the point's values."""
        return apply_point({"dataset": self.dataset, "backbone": self.backbone, "variant": self.variant},
                           self.fixed, point)


def apply_point(run: dict, fixed: dict, point: dict) -> tuple[dict, dict]:
    run, overrides = dict(run), fixed
    for key, value in point.items():
        if key in RUN_KEYS:
            run[key] = value
        else:
            overrides = deep_merge(overrides, nest(key, value))
    return run, overrides


def nest(key: str, value: Any) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _parse_dimension(path: Path, key: str, spec: Any) -> Dimension:
    where = f"{path}: dimensions.{key}"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where}: expected one of {{{', '.join(KINDS)}}}: ..., got {spec!r}")
    (kind, arg), = spec.items()
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown kind {kind!r}; expected one of {KINDS}")
    if kind in ("choice", "grid"):
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"{where}: {kind} needs a non-empty list of values")
        return Dimension(key, kind, values=tuple(arg))
    if key in RUN_KEYS:
        raise ConfigError(f"{where}: {key} takes choice or grid, not {kind}")
    step = 1
    if kind == "int" and isinstance(arg, dict):
        arg, step = [arg.get("low"), arg.get("high")], arg.get("step", 1)
    if (not isinstance(arg, list) or len(arg) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in arg)):
        raise ConfigError(f"{where}: {kind} needs [low, high], got {arg!r}")
    low, high = arg
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int) and isinstance(step, int) and step >= 1):
        raise ConfigError(f"{where}: int needs integer [low, high] and step >= 1, got {arg!r}")
    if not low < high or (kind == "loguniform" and low <= 0):
        raise ConfigError(f"{where}: need low < high{' and low > 0' if kind == 'loguniform' else ''}, got {arg!r}")
    return Dimension(key, kind, low=low, high=high, step=step)


def _flat_set(path: Path, raw: Any) -> dict:
    """`set:` as {"regenerate.gamma": 0.1, ...} or nested mappings -> nested overrides."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: set must be a mapping of config keys to values")
    out: dict = {}
    for key, value in raw.items():
        out = deep_merge(out, nest(str(key), value))
    return out


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; errors name the file and the key."""
    path = Path(path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected some of {sorted(TOP_KEYS)}")
    if "dataset" not in raw:
        raise ConfigError(f"{path}: missing key 'dataset' (the run's default dataset; --dataset overrides it)")
    dims_raw = raw.get("dimensions") or {}
    if not isinstance(dims_raw, dict) or not dims_raw:
        raise ConfigError(f"{path}: dimensions must be a non-empty mapping of config key -> kind")
    search_raw = dict(raw.get("search") or {})
    asha_raw = search_raw.pop("asha", None)  # Optional nested section: built on its own
    warm_raw = search_raw.pop("warm_start", None)  # checked against the dimensions below
    try:
        search = from_dict(SearchConfig, search_raw, "search.")
        if asha_raw is not None:
            search.asha = from_dict(AshaConfig, asha_raw if isinstance(asha_raw, dict) else {"?": asha_raw},
                                    "search.asha.")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    dims = tuple(_parse_dimension(path, str(k), v) for k, v in dims_raw.items())
    from dr4sr.search.warm_start import parse_warm_start

    search.warm_start = parse_warm_start(path, warm_raw, dims, search.kind)
    grid = [d.key for d in dims if d.kind == "grid"]
    if search.kind == "grid" and len(grid) != len(dims):
        bad = next(d.key for d in dims if d.kind != "grid")
        raise ConfigError(f"{path}: dimensions.{bad}: search.kind grid takes only grid dimensions")
    if search.kind == "optuna" and grid:
        raise ConfigError(f"{path}: dimensions.{grid[0]}: OptunaSearch has no grid search; use choice "
                          "(or one study per grid cell: jobs/grid.py --space)")
    metric = raw.get("metric", "ndcg@20")
    if metric not in VALID_METRICS:
        raise ConfigError(f"{path}: metric must be one of {VALID_METRICS} (validation), got {metric!r}")
    space = SearchSpace(path=path, name=str(raw.get("name") or path.stem), dataset=str(raw["dataset"]),
                        backbone=str(raw.get("backbone", "sasrec")), variant=str(raw.get("variant", "dr4sr")),
                        composition=str(raw.get("composition", "regenerated+mined+original")),
                        workers=int(raw.get("workers", 1)), metric=metric, fixed=_flat_set(path, raw.get("set")),
                        preset=None if raw.get("preset") is None else str(raw["preset"]), search=search,
                        dimensions=dims)
    from dr4sr.search.validate import validate_space

    return validate_space(space)
