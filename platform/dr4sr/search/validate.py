"""Check a search space against the real config dataclasses, the way `dr4sr run` will build them."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError
from dr4sr.pipeline import COMPOSITIONS, REGEN_SECTIONS, TARGET_SECTIONS, VARIANTS, split_overrides
from dr4sr.search.space import RUN_KEYS, SearchSpace, nest


def check_run(backbone: str, dataset: str, overrides: dict, preset: str | None = None) -> None:
    """Build every config `run_variant` would build from these settings (raises ConfigError); the
    regeneration configs are built whatever the variant, so their keys are checked too."""
    from dr4sr.mining.stage import MineConfig
    from dr4sr.presets import load_preset
    from dr4sr.regen.config import build_regen_config
    from dr4sr.train.runner import build_run_config

    target, regen = split_overrides(overrides)
    build_run_config(backbone, dataset, deep_merge(load_preset(preset, TARGET_SECTIONS), target))
    rcfg = build_regen_config(regen, Path(dataset).stem.lower(), preset)
    MineConfig.from_dict(dict(rcfg.mine))


def _section(key: str) -> str:
    return key.split(".", 1)[0]


def validate_space(space: SearchSpace) -> SearchSpace:
    path = space.path
    known = set(TARGET_SECTIONS) | set(REGEN_SECTIONS)
    notes: list[str] = []

    def usable(key: str, where: str) -> bool:
        sec = _section(key)
        if key in RUN_KEYS or sec in known:
            if key not in RUN_KEYS and "." not in key:
                raise ConfigError(f"{path}: {where}: expected section.key (e.g. regenerate.gamma), got {key!r}")
            return True
        raise ConfigError(f"{path}: {where}: unknown config section {sec!r}; expected one of "
                          f"{sorted(known)} or {list(RUN_KEYS)}")

    from dr4sr.presets import check_preset

    check_preset(space.preset, f"{path}: preset")
    fixed = {}
    for sec, body in space.fixed.items():
        if usable(f"{sec}.x", f"set.{sec}"):
            fixed[sec] = body
    run_values = {k: [getattr(space, k)] for k in RUN_KEYS}
    for d in space.dimensions:
        if d.key in RUN_KEYS:
            run_values[d.key] = list(d.values)
    for variant in run_values["variant"]:
        if variant not in VARIANTS:
            raise ConfigError(f"{path}: variant: unknown {variant!r}; expected one of {VARIANTS}")
    if space.composition not in COMPOSITIONS:
        raise ConfigError(f"{path}: composition: unknown {space.composition!r}; expected one of {COMPOSITIONS}")
    dataset = run_values["dataset"][0]
    for backbone in run_values["backbone"]:
        try:
            check_run(str(backbone), dataset, fixed, space.preset)
        except ConfigError as exc:
            raise ConfigError(f"{path}: set (backbone {backbone}): {exc}") from None
        for d in space.dimensions:
            if d.key in RUN_KEYS or not usable(d.key, f"dimensions.{d.key}"):
                continue
            for value in d.candidates():
                try:
                    check_run(str(backbone), dataset, deep_merge(fixed, nest(d.key, value)), space.preset)
                except ConfigError as exc:
                    raise ConfigError(f"{path}: dimensions.{d.key} = {value!r}: {exc}") from None
    from dr4sr.search.warm_start import check_points

    check_points(space, check_run)
    return dataclasses.replace(space, notes=notes)


def check_datasets(space: SearchSpace, data_dir: str | None, download: bool, where: str) -> None:
    """Every dataset the trials would load exists (a benchmark name, or a file), so a typo stops now
    rather than in each trial. `download=False` (a dry run) lets an uncached benchmark pass unread."""
    import os

    from dr4sr.data.datasets import BENCHMARKS, resolve_dataset_path
    from dr4sr.errors import DR4SRError

    datasets = [space.dataset] + [v for d in space.dimensions if d.key == "dataset" for v in d.values]
    for dataset in map(str, datasets):
        in_cache = dataset.lower() in BENCHMARKS and not (data_dir or os.environ.get("DR4SR_DATA_DIR"))
        if in_cache and not download:
            continue
        try:
            resolve_dataset_path(dataset, data_dir, download=download)
        except DR4SRError as exc:
            raise ConfigError(f"{where}: {exc}") from None
