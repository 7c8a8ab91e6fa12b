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
import functools
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
from dr4sr.plan import format_plan, plan_graphs, watch
from dr4sr.presets import REGEN_SECTIONS, TARGET_SECTIONS, load_preset
from dr4sr.regen.compose import COMPOSITIONS as _COMPOSITIONS
from dr4sr.stages import Runtime, StageGraph, execute, variant_graph
from dr4sr.train.runner import build_run_config, check_writable, prepare_splits

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
    rcfg: object  # the regeneration pipeline's config (None for backbone)
    splits: object
    store: ArtifactStore
    graph: StageGraph
    runtime: Runtime  # workers, GPUs, log and the target's per-epoch callback
    plan: list
    req: RunRequest  # with dr4sr+ resolved to its data recipe (variant dr4sr, personalizer on)
    name: str  # the variant as the user asked for it


def prepare_run(req: RunRequest, out_dir: str | Path, seed: int | None = None) -> PreparedRun:
    """Config, output checks, data, the stage graph and its plan: everything that can fail fast, before any
    work. Every artifact id, the target's included, follows from the configuration."""
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
    runtime = Runtime(req.workers, req.gpus)
    graph = variant_graph(req.variant, splits, cfg, rcfg, req.composition, runtime)
    plan = plan_graphs([graph], store, splits.fingerprint)
    return PreparedRun(cfg, rcfg, splits, store, graph, runtime, plan, req, name)


def run_variant(req: RunRequest, out_dir: str | Path, seed: int | None = None, log=print,
                show_plan: bool = True, prepared: PreparedRun | None = None, on_epoch=None, events=None) -> dict:
    """`on_epoch(record)` is called after every epoch of the target model's training (not of the stages
    before it, nor when the train artifact is reused): how a Tune trial reports to ASHA. `events`: the
    executor's progress callback when the caller shows the plan itself (compare, one plan for its runs)."""
    from dr4sr.train.worker import reset_peak_memory

    reset_peak_memory()  # this run's own peak, also when the process ran others before it
    run = prepared or prepare_run(req, out_dir, seed)
    cfg, store, req, name = run.cfg, run.store, run.req, run.name
    if show_plan:
        log(format_plan(f"{name} with {req.backbone} on {req.dataset} -> {out_dir}", run.plan, store))
        events = watch(run.plan, log)
    run.runtime.log, run.runtime.on_epoch = log, on_epoch
    started = time.time()
    data_ready = {}

    def timed(event, stage, aid) -> None:  # when the target starts, its data is ready
        if stage is run.graph.target and event == "start":
            data_ready["seconds"] = time.time() - started
        if events is not None:
            events(event, stage, aid)

    built = execute(run.graph, store, timed, log)
    art = built[run.graph.target]
    extra = {"variant": name, "dataset": req.dataset, "preset": req.preset, "train_artifact": art.id,
             "data_seconds": data_ready.get("seconds", time.time() - started),
             "run_wall_seconds": round(time.time() - started, 1), "code_commit": code_commit(),
             **provenance(run, built)}
    if req.smoke_test:
        extra["smoke_test"] = smoke_label(cfg.train.max_epochs)
    return publish_run(art, out_dir, extra)


def backbone_weights(out_dir: str | Path, dataset: str, seed: int, data_dir: str | None = None,
                     smoke_test: bool = False, store_root: str | None = None, overrides: dict | None = None,
                     log=print) -> Path:
    """model.pt of the SASRec `backbone` run on `dataset` at `seed` (the default SASRec config; of
    `overrides` only the `data` section applies), from the artifact store: trained once, then reused, e.g.
    by a grid's backbone row. MELT starts from it, as its authors' code starts from a pre-trained SASRec."""
    from dr4sr.baselines.melt_run import ENCODER

    data = {k: v for k, v in (overrides or {}).items() if k == "data"}
    req = RunRequest(dataset, backbone=ENCODER, variant="backbone", overrides=data, data_dir=data_dir,
                     smoke_test=smoke_test, store_root=store_root)
    run = prepare_run(req, out_dir, seed)
    run.runtime.log = log
    return execute(run.graph, run.store, log=log)[run.graph.target].path / "model.pt"


def provenance(run: PreparedRun, built: dict) -> dict:
    """What the target model trained on, for metrics.json: the rows by source and the artifacts they came from."""
    data = run.graph.target.inputs.get("data")
    if data is None:
        return {"training_data": "original"}
    rows = built[data].manifest
    out = {"training_data": data.composition, "compose_artifact": built[data].id,
           "compose": dataclasses.asdict(run.rcfg.compose), "rows_by_source": rows["rows"],
           "mine_artifact": built[data.mine].id}
    if data.regenerate is not None:
        out.update({"regenerate_artifact": built[data.regenerate].id, "regen_config": dataclasses.asdict(run.rcfg)})
    return out


@functools.lru_cache(maxsize=None)
def recipe(variant: str, backbone: str = "sasrec", preset: str | None = None) -> tuple[str, ...]:
    """The kinds of a variant's stages in execution order, read from its graph on the default configuration
    without any data: what the grid's dry run lists and how the grid tells which runs regenerate."""
    from dr4sr.regen.config import build_regen_config

    data_variant = PERSONALIZED.get(variant, (variant,))[0]
    cfg = build_run_config(backbone, preset=preset)
    rcfg = None if data_variant == "backbone" else build_regen_config({}, None, preset)
    return tuple(s.kind for s in variant_graph(data_variant, None, cfg, rcfg).order())


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
