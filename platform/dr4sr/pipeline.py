"""`dr4sr run`: one target-model run of a variant, running (or reusing) every stage it needs.

Variants: `backbone` (original data), `dr4sr` (regenerated data), `dr4sr-no-diversity` (regenerator
without the diversity promoter), `pattern` (mined patterns + original, no regenerator).
`--set` keys are routed by section: data/model/train go to the target model; mine/init/regen/
pretrain/regenerate go to the regeneration pipeline.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dr4sr.artifacts import ArtifactStore
from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError
from dr4sr.train.runner import build_run_config, cached_train, check_writable, prepare_splits

VARIANTS = ("backbone", "dr4sr", "dr4sr-no-diversity", "pattern")
COMPOSITIONS = ("regenerated", "regenerated+mined", "regenerated+mined+original", "original")
TARGET_SECTIONS = ("data", "model", "train")
REGEN_SECTIONS = ("mine", "init", "regen", "pretrain", "regenerate")
SMOKE_REGEN = {"pretrain": {"max_epochs": 2}, "init": {"sasrec": {"train": {"max_epochs": 2, "patience": 2}}}}


@dataclasses.dataclass
class RunRequest:
    dataset: str
    backbone: str = "sasrec"
    variant: str = "dr4sr"
    composition: str = "regenerated+mined+original"  # what the authors' numbers used
    overrides: dict = dataclasses.field(default_factory=dict)
    data_dir: str | None = None
    workers: int = 1
    gpus: bool = False
    smoke_test: bool = False
    store_root: str | None = None

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; expected one of {VARIANTS}")
        if self.composition not in COMPOSITIONS:
            raise ConfigError(f"unknown composition {self.composition!r}; expected one of {COMPOSITIONS}")
        unknown = sorted(set(self.overrides) - set(TARGET_SECTIONS) - set(REGEN_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r} in --set; expected one of "
                              f"{TARGET_SECTIONS + REGEN_SECTIONS}")


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    target = {k: v for k, v in overrides.items() if k in TARGET_SECTIONS}
    regen = {k: v for k, v in overrides.items() if k in REGEN_SECTIONS}
    return target, regen


def mined_rows(splits, mine_artifact) -> list[np.ndarray]:
    """The mined patterns paired to users (one row per pair), as training sequences."""
    from dr4sr.mining.stage import load_mine_artifact

    patterns, _, pairs = load_mine_artifact(mine_artifact)
    # each distinct pattern once, like the regenerated dataset (which is deduplicated too)
    ids = pd.unique(pairs["pattern_id"].to_numpy())
    return [np.asarray(patterns[i], dtype=np.int64) for i in ids]


def training_data(req: RunRequest, splits, store: ArtifactStore, regen_overrides: dict, log) -> tuple[list, dict]:
    """The sequences the target model trains on, and provenance to record in metrics.json."""
    if req.variant == "backbone":
        return splits.train, {"training_data": "original"}
    from dr4sr.regen.config import build_regen_config

    if req.variant == "dr4sr-no-diversity":
        regen_overrides = deep_merge(regen_overrides, {"regen": {"diversity": False}})
    if req.smoke_test:
        regen_overrides = deep_merge(SMOKE_REGEN, regen_overrides)
    rcfg = build_regen_config(regen_overrides, Path(req.dataset).stem.lower())
    if req.variant == "pattern":
        from dr4sr.mining.stage import run_mine_stage

        art = run_mine_stage(splits, rcfg.mine, store, workers=req.workers if req.workers > 1 else None)
        rows = mined_rows(splits, art)
        log(f"[pattern] {len(rows):,} distinct mined patterns + {len(splits.train):,} original sequences")
        return rows + list(splits.train), {"training_data": "mined+original", "mine_artifact": art.id}
    from dr4sr.regen.stage import regenerate_pipeline, training_sequences

    art = regenerate_pipeline(splits, rcfg, store, workers=req.workers, gpus=req.gpus, log=log)
    rows = training_sequences(art, req.composition)
    log(f"[{req.variant}] training on {len(rows):,} rows ({req.composition}) from artifact {art.id}")
    return rows, {"training_data": req.composition, "regenerate_artifact": art.id,
                  "regen_config": dataclasses.asdict(rcfg)}


def run_variant(req: RunRequest, out_dir: str | Path, seed: int | None = None, log=print, on_epoch=None) -> dict:
    """`on_epoch(record)` is called after every epoch of the target model's training (not of the stages
    before it, nor when the train artifact is reused): how a Tune trial reports to ASHA."""
    req.validate()
    target_ov, regen_ov = split_overrides(req.overrides)
    if seed is not None:
        target_ov = deep_merge(target_ov, {"train": {"seed": seed}})
    cfg = build_run_config(req.backbone, req.dataset, target_ov, req.data_dir, req.smoke_test)
    store = ArtifactStore(req.store_root)
    splits = prepare_splits(cfg)
    started = time.time()
    log(f"[{req.variant}] preparing training data for {req.backbone} on {req.dataset}")
    rows, provenance = training_data(req, splits, store, regen_ov, log)
    prep_seconds = time.time() - started
    log(f"[{req.variant}] training {req.backbone} ({len(rows):,} rows) -> {out_dir}")
    data_id = provenance.get("regenerate_artifact") or provenance.get("mine_artifact") or "original"
    if data_id != "original":
        data_id = f"{provenance['training_data']}:{data_id}"
    art = cached_train(store, cfg, splits, rows, data_id, req.workers, req.gpus, log, on_epoch)
    return publish_run(art, out_dir, {"variant": req.variant, "dataset": req.dataset,
                                      "data_seconds": prep_seconds, "train_artifact": art.id, **provenance})


def publish_run(art, out_dir: str | Path, extra: dict) -> dict:
    """Copy a train artifact's outputs to the user's output folder, with the run's provenance added."""
    out = check_writable(out_dir)
    for name in ("user_metrics.parquet", "model.pt"):
        shutil.copyfile(art.path / name, out / name)
    metrics = {**json.loads((art.path / "metrics.json").read_text()), **extra}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, out / "metrics.json")
    return metrics
