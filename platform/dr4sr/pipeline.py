"""`dr4sr run`: one target-model run of a variant, running (or reusing) every stage it needs.

Variants: `backbone` (original data), `dr4sr` (regenerated data), `dr4sr-no-diversity` (regenerator
without the diversity promoter), `pattern` (mined patterns + original, no regenerator), `dr4sr+`
(the dr4sr data with the personalizer on; `--set personalizer.enabled=true` turns it on for any variant),
`constant` (the dr4sr data, every row outside `personalizer.fixed_sources` at the constant weight
`personalizer.constant_weight`: the control that tells what DR4SR+'s learned weights add).
`--set` keys are routed by section: data/model/train/personalizer go to the target model; mine/init/
compose/regen/pretrain/regenerate go to the regeneration pipeline. A `preset` (dr4sr.presets) sits under
`--set`. Every training row carries its source (original, mined, generated): metrics.json counts them,
and DR4SR+ keeps the rows of `personalizer.fixed_sources` at weight 1.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import dr4sr.personalizer  # noqa: F401  (registers DR4SR+ with the training loop: variants dr4sr+, constant)
from dr4sr.artifacts import ArtifactStore
from dr4sr.config import deep_merge
from dr4sr.errors import ConfigError
from dr4sr.paths import require_writable, smoke_label
from dr4sr.plan import format_plan, plan_stages, target_stage, variant_stages, watch
from dr4sr.presets import REGEN_SECTIONS, TARGET_SECTIONS, load_preset
from dr4sr.regen.compose import COMPOSITIONS as _COMPOSITIONS
from dr4sr.regen.compose import TrainingRows, original_rows, pattern_rows
from dr4sr.train.runner import build_run_config, cached_train, check_writable, prepare_splits

VARIANTS = ("backbone", "dr4sr", "dr4sr-no-diversity", "pattern", "dr4sr+", "constant")
COMPOSITIONS = tuple(_COMPOSITIONS)
# variant -> (the variant whose data it re-weights, its personalizer settings under --set)
PERSONALIZED = {"dr4sr+": ("dr4sr", {"enabled": True}),
                "constant": ("dr4sr", {"enabled": True, "mode": "constant"})}


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
    preset: str | None = None  # dr4sr.presets name or path, applied under `overrides`

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"unknown variant {self.variant!r}; expected one of {VARIANTS}")
        if self.composition not in COMPOSITIONS:
            raise ConfigError(f"unknown composition {self.composition!r}; expected one of {COMPOSITIONS}")
        unknown = sorted(set(self.overrides) - set(TARGET_SECTIONS) - set(REGEN_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown config section {unknown[0]!r} in --set; expected one of "
                              f"{TARGET_SECTIONS + REGEN_SECTIONS}")
        load_preset(self.preset)  # an unknown preset or a bad section stops before any work


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    target = {k: v for k, v in overrides.items() if k in TARGET_SECTIONS}
    regen = {k: v for k, v in overrides.items() if k in REGEN_SECTIONS}
    return target, regen


def training_data(req: RunRequest, splits, store: ArtifactStore, regen_overrides: dict,
                  log) -> tuple[TrainingRows, str, dict]:
    """The rows the target model trains on (each labelled with its source), their data id for the
    train artifact, and provenance to record in metrics.json."""
    if req.variant == "backbone":
        return original_rows(splits.train), "original", {"training_data": "original"}
    rcfg = regen_config(req, regen_overrides)
    if req.variant == "pattern":
        from dr4sr.mining.stage import run_mine_stage

        art = run_mine_stage(splits, rcfg.mine, store, workers=req.workers if req.workers > 1 else None)
        rows = pattern_rows(splits.train, art.path, rcfg.compose)
        log(f"[pattern] training on {len(rows):,} rows {rows.counts()} (compose.mined={rcfg.compose.mined}, "
            f"dedupe={rcfg.compose.dedupe})")
        return rows, rows.data_id("mined+original"), {
            "training_data": "mined+original", "mine_artifact": art.id,
            "compose": dataclasses.asdict(rcfg.compose), "rows_by_source": rows.counts()}
    from dr4sr.regen.compose import read_dataset, regenerated_rows
    from dr4sr.regen.stage import regenerate_pipeline

    art = regenerate_pipeline(splits, rcfg, store, workers=req.workers, gpus=req.gpus, log=log)
    mine_path = store.path("mine", art.manifest["inputs"]["mine"])
    rows = regenerated_rows(req.composition, rcfg.compose, splits.train, mine_path, read_dataset(art.path))
    log(f"[{req.variant}] training on {len(rows):,} rows {rows.counts()} ({req.composition}, "
        f"compose.mined={rcfg.compose.mined}, dedupe={rcfg.compose.dedupe}) from artifact {art.id}")
    return rows, rows.data_id(f"{req.composition}:{art.id}"), {
        "training_data": req.composition, "regenerate_artifact": art.id, "rows_by_source": rows.counts(),
        "regen_config": dataclasses.asdict(rcfg)}


def regen_config(req: RunRequest, regen_overrides: dict):
    """The regeneration pipeline's config for this variant, resolved as `dr4sr mine/pretrain/regenerate`
    resolve it (dr4sr.regen.config.build_regen_config), so they build the same artifacts."""
    from dr4sr.regen.config import build_regen_config

    if req.variant == "dr4sr-no-diversity":
        regen_overrides = deep_merge(regen_overrides, {"regen": {"diversity": False}})
    return build_regen_config(regen_overrides, req.dataset, req.preset, req.smoke_test)


@dataclasses.dataclass
class PreparedRun:
    cfg: object  # the target model's RunConfig
    regen_overrides: dict
    splits: object
    store: ArtifactStore
    plan: list
    req: RunRequest  # with dr4sr+ resolved to its data recipe (variant dr4sr, personalizer on)
    name: str  # the variant as the user asked for it
    data: tuple | None = None  # training_data's result, when the plan already needed it


def prepare_run(req: RunRequest, out_dir: str | Path, seed: int | None = None) -> PreparedRun:
    """Config, output checks, data and the stage plan: everything that can fail fast, before any work."""
    req.validate()
    name = req.variant
    target_ov, regen_ov = split_overrides(req.overrides)
    if seed is not None:
        target_ov = deep_merge(target_ov, {"train": {"seed": seed}})
    if req.variant in PERSONALIZED:
        data_variant, personalizer = PERSONALIZED[req.variant]
        target_ov = deep_merge({"personalizer": personalizer}, target_ov)
        target_ov = deep_merge(target_ov, {"personalizer": {"enabled": True}})
        req = dataclasses.replace(req, variant=data_variant)  # the same data recipe
    cfg = build_run_config(req.backbone, req.dataset, target_ov, req.data_dir, req.smoke_test, req.preset)
    store = ArtifactStore(req.store_root)
    require_writable(out_dir, "output folder")
    require_writable(store.root, "artifact store", "pass --store DIR or set $DR4SR_ARTIFACTS")
    splits = prepare_splits(cfg)
    rcfg = None if req.variant == "backbone" else regen_config(req, regen_ov)
    plan = plan_stages(store, variant_stages(req.variant, splits, cfg, rcfg, store), splits.fingerprint)
    run = PreparedRun(cfg, regen_ov, splits, store, plan, req, name)
    if all(p.state == "cached" for p in plan[:-1]) and plan[-1].id is None:
        # the target's id hashes its rows: with every earlier stage cached they are only a read away
        run.data = training_data(req, splits, store, regen_ov, lambda *_: None)
        plan[-1:] = plan_stages(store, [target_stage(cfg, splits, run.data[1])], splits.fingerprint)
    return run


def run_variant(req: RunRequest, out_dir: str | Path, seed: int | None = None, log=print,
                show_plan: bool = True, prepared: PreparedRun | None = None, on_epoch=None) -> dict:
    """`on_epoch(record)` is called after every epoch of the target model's training (not of the stages
    before it, nor when the train artifact is reused): how a Tune trial reports to ASHA."""
    run = prepared or prepare_run(req, out_dir, seed)
    cfg, splits, store, req, name = run.cfg, run.splits, run.store, run.req, run.name
    if show_plan:  # else the caller (compare) shows one plan for all its runs and watches the store itself
        log(format_plan(f"{name} with {req.backbone} on {req.dataset} -> {out_dir}", run.plan, store))
        watch(store, run.plan, log)
    started = time.time()
    rows, data_id, provenance = run.data or training_data(req, splits, store, run.regen_overrides, log)
    prep_seconds = time.time() - started
    log(f"[{name}] training {req.backbone} ({len(rows):,} rows) -> {out_dir}")
    art = cached_train(store, cfg, splits, None if data_id == "original" else rows.rows, data_id,
                       req.workers, req.gpus, log, row_sources=rows.sources, on_epoch=on_epoch)
    if show_plan:
        store.observer = None
    extra = {"variant": name, "dataset": req.dataset, "preset": req.preset, "data_seconds": prep_seconds,
             "train_artifact": art.id, "run_wall_seconds": round(time.time() - started, 1),
             "code_commit": code_commit(), **provenance}
    if req.smoke_test:
        extra["smoke_test"] = smoke_label(cfg.train.max_epochs)
    return publish_run(art, out_dir, extra)


def code_commit() -> str:
    """The git commit of the code that ran (`+dirty` with uncommitted changes), else the package version."""
    import subprocess

    from dr4sr import __version__

    src = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"dr4sr {__version__} (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def publish_run(art, out_dir: str | Path, extra: dict) -> dict:
    """Copy a train artifact's outputs to the user's output folder, with the run's provenance added."""
    out = check_writable(out_dir)
    for name in ("user_metrics.parquet", "model.pt", "personalizer_weights.parquet", "personalizer.pt"):
        if name.startswith("personalizer") and not (art.path / name).exists():
            continue  # only DR4SR+ runs have them
        shutil.copyfile(art.path / name, out / name)
    metrics = {**json.loads((art.path / "metrics.json").read_text()), **extra}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, out / "metrics.json")
    return metrics
