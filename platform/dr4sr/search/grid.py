"""The benchmark grid: backbones x datasets x variants x seeds as Ray tasks in one job, resumable.

Every run is one `dr4sr.pipeline.run_variant` in a Ray task (one CPU, or a GPU fraction), written to
`<out>/<dataset>/<backbone>/<variant>-seed<S>`; a folder that already holds a finished run is kept and
skipped, so a killed grid continues where it stopped (an interrupted run resumes from its checkpoint in
the store). Runs start in priority order, seed first: every cell's first seed finishes before any
second seed starts, so a partial grid already answers for every dataset. Runs share one artifact
store; per dataset one regenerating run goes first (it mines, trains the SASRec init and pre-trains),
the dataset's other regenerating runs then reuse those artifacts. `<out>/status.json` says which runs
are running (`dr4sr grid --status`); `<out>/table3.{md,tex,csv}` is rewritten after every finished run.
With a search space, each (dataset, backbone) cell also runs that study (one Tuner per cell: Optuna has
no grid search), its best trial by validation is retrained with the grid's seeds as variant `tuned`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

from dr4sr.errors import ConfigError
from dr4sr.paths import atomic_write_text
from dr4sr.pipeline import VARIANTS, RunRequest, backbone_weights, recipe, run_variant
from dr4sr.storage import resolve_store

DATASETS = ("beauty", "sports", "toys", "yelp")
SMOKE_USERS, SMOKE_ITEMS = 300, 300
TUNED = "tuned"
RUN_RETRIES = 2  # per run, after its worker process or node died


def default_backbones() -> list[str]:
    from dr4sr.models.registry import BACKBONES

    return list(BACKBONES)


def default_variants() -> list[str]:
    return ["backbone", "dr4sr", "dr4sr+", "pattern"]


def finished(run_dir: Path) -> bool:
    """A run folder with test metrics (written last, atomically) is a finished run."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return False
    try:
        return "test" in json.loads(path.read_text())
    except json.JSONDecodeError:
        return False


@dataclasses.dataclass
class GridOptions:
    out: Path
    backbones: list[str]
    datasets: list[str]
    variants: list[str]
    seeds: list[int]
    store: str | None = None
    data_dir: str | None = None
    smoke_test: bool = False
    space: str | None = None  # a search space run in every (dataset, backbone) cell
    overrides: dict = dataclasses.field(default_factory=dict)  # `--set` for every run
    preset: str | None = None  # a dr4sr.presets name or path under `overrides` (e.g. paper-era)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_concurrent: int | None = None  # runs at once; None = as many as the cluster fits now
    baselines: list[str] = dataclasses.field(default_factory=list)  # data-centric baselines (dr4sr.baselines)
    storage: str | None = None  # Optuna storage URL of the grid's study (None: <out>/optuna.db)
    track: str | None = None  # also log every cell to mlflow or wandb
    out_uri: str | None = None  # --out on s3://: `out` is then this node's working copy of it

    def folder(self):
        """The grid folder as an OutFolder (its pull/push do nothing for a local folder)."""
        from dr4sr.storage.workcopy import OutFolder

        return OutFolder(self.out_uri or self.out)

    def validate(self) -> None:
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ConfigError(f"--variants: unknown {bad[0]!r}; this build has {VARIANTS}")
        from dr4sr.models.registry import get_backbone

        for b in self.backbones:
            get_backbone(b)
        if "backbone" not in self.variants:
            raise ConfigError("--variants must include 'backbone': Table 3's gains and tests are against it")
        from dr4sr.baselines import BASELINES
        from dr4sr.presets import check_preset

        check_preset(self.preset, "--preset")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"--baselines: unknown {bad[0]!r}; this build has {BASELINES}")


@dataclasses.dataclass(frozen=True)
class GridRun:
    dataset: str  # the name used for folders and tables
    backbone: str
    variant: str
    seed: int
    data: str  # what RunRequest.dataset gets (a name, or a smoke sample's path)

    def dir(self, out: Path) -> Path:
        return Path(out) / self.dataset / self.backbone / f"{self.variant}-seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.backbone}/{self.variant}/seed {self.seed}"


def label(dataset: str) -> str:
    """Folder and table name of a dataset: the benchmark name, or a file's stem."""
    return Path(dataset).stem.lower()


def resolve_data(opts: GridOptions) -> dict[str, str]:
    """Dataset label -> what the runs load: the name/path itself, or in a smoke test a dense user sample."""
    if not opts.smoke_test:
        return {label(d): d for d in opts.datasets}
    from dr4sr.search.sample import sample_dataset

    return {label(d): str(sample_dataset(d, Path(opts.out) / "data", SMOKE_USERS, opts.data_dir,
                                         items=SMOKE_ITEMS).resolve()) for d in opts.datasets}


BASELINE_VARIANT = "baseline"  # the variant name of a data-centric baseline's runs


def plan(opts: GridOptions, data: dict[str, str]) -> list[GridRun]:
    """Every run, in the order they start: seed, then backbone, dataset and variant as given; after each
    seed's runs, the data-centric baselines of that seed (deterministic ones once, at the first seed)."""
    from dr4sr.baselines import TRAINED

    seeds = opts.seeds[:1] if opts.smoke_test else opts.seeds
    out = []
    for s in seeds:
        out += [GridRun(d, b, v, s, data[d]) for b in opts.backbones for d in data for v in opts.variants]
        out += [GridRun(d, b, BASELINE_VARIANT, s, data[d]) for b in opts.baselines for d in data
                if s == seeds[0] or b in TRAINED]
    return out


def regenerates(run: GridRun) -> bool:
    """Whether the run's stage graph holds a regenerate stage."""
    return run.variant in VARIANTS and "regenerate" in recipe(run.variant, run.backbone)


def leads(runs: list[GridRun]) -> dict[str, GridRun]:
    """Per dataset, the first regenerating run (SASRec first: its init is SASRec's own backbone run)."""
    out = {}
    for r in sorted(runs, key=lambda r: (r.backbone != "sasrec", r.seed)):
        if regenerates(r) and r.dataset not in out:
            out[r.dataset] = r
    return out


def weights(rel: str) -> bool:
    """Files a grid folder's working copy leaves in the bucket: the runs' weights (tables never read them)."""
    return rel.endswith(".pt")


def _run_one(fields: dict, run_dir: str, seed: int, out_uri: str | None = None) -> dict:
    """Ray task body: one pipeline (or baseline) run; returns what the progress line shows. With the grid
    on s3://, `run_dir` is relative: the run goes to this node's working copy and then to the bucket."""
    if out_uri is None:
        return _run_in(fields, run_dir, seed)
    from dr4sr.storage.workcopy import OutFolder

    folder = OutFolder(out_uri)
    folder.pull("data")  # a smoke test's samples, when this task runs on another node
    try:
        return _run_in(fields, str(folder.local / run_dir), seed)
    finally:  # the run folder is this task's own
        folder.push(run_dir, delete=True)


def _run_in(fields: dict, run_dir: str, seed: int) -> dict:
    label = f"{Path(run_dir).parent.name}/{Path(run_dir).name}"
    log = lambda msg: print(f"[{label}] {msg}", flush=True)  # noqa: E731
    if fields["variant"] == BASELINE_VARIANT:
        from dr4sr.baselines import PRETRAINED, TRAINED, baseline_runner

        overrides = {k: v for k, v in fields["overrides"].items() if k in ("data", fields["backbone"])}
        kwargs = {"resume": True} if fields["backbone"] in TRAINED else {}  # an interrupted run continues
        if fields["backbone"] in PRETRAINED:  # the grid's own SASRec backbone run of this seed, from the store
            kwargs["backbone_weights"] = functools.partial(
                backbone_weights, run_dir, fields["dataset"], data_dir=fields["data_dir"],
                smoke_test=fields["smoke_test"], store_root=fields["store_root"],
                overrides=overrides, log=log)
        m = baseline_runner(fields["backbone"])(fields["dataset"], run_dir, seed=seed, overrides=overrides,
                                                data_dir=fields["data_dir"], smoke_test=fields["smoke_test"], log=log,
                                                **kwargs)
        return {"ndcg@20": m["test"]["ndcg@20"], "epochs": m.get("epochs", "no")}
    m = run_variant(RunRequest(**fields), run_dir, seed=seed, log=log)
    return {"ndcg@20": m["test"]["ndcg@20"], "epochs": m["epochs"]}


def request_fields(opts: GridOptions, run: GridRun, overrides: dict | None = None) -> dict:
    return {"dataset": run.data, "backbone": run.backbone, "variant": run.variant,
            "overrides": overrides if overrides is not None else opts.overrides, "preset": opts.preset,
            "data_dir": opts.data_dir,
            "smoke_test": opts.smoke_test, "store_root": resolve_store(opts.store)}


def slots(opts: GridOptions) -> int | None:
    """Runs at once: `max_concurrent`, else what the cluster's CPUs (GPUs) fit now; None (no limit) when
    they fit none yet, e.g. an autoscaling cluster whose head takes no work."""
    import ray

    if opts.max_concurrent:
        return opts.max_concurrent
    res = ray.cluster_resources()
    fits = [res.get("CPU", 0) / opts.cpus_per_run] if opts.cpus_per_run else []
    if opts.gpus_per_run:
        fits.append(res.get("GPU", 0) / opts.gpus_per_run)
    n = int(min(fits)) if fits else 0
    return n if n >= 1 else None


def execute(opts: GridOptions, runs: list[GridRun], fields_of, on_done, label: str = "grid") -> list[str]:
    """Run `runs` as Ray tasks, at most `slots(opts)` at once, in the order given; a dataset's regenerating
    runs wait for its lead. `on_done()` after each. Returns failures."""
    import ray

    from dr4sr.search.grid_status import StatusFile
    from dr4sr.search.progress import Eta

    todo = [r for r in runs if not finished(r.dir(opts.out))]
    print(f"[{label}] {len(runs) - len(todo)} of {len(runs)} runs already finished (kept); {len(todo)} to run",
          flush=True)
    # a worker or node lost mid-run (a system failure, never an error of the run itself) retries the run,
    # which resumes from its checkpoint in the store; a run that raised fails at once and is listed
    task = ray.remote(_run_one).options(num_cpus=opts.cpus_per_run, num_gpus=opts.gpus_per_run,
                                        max_retries=RUN_RETRIES, retry_exceptions=False)
    first = leads(todo)
    limit = slots(opts)
    folder = opts.folder()
    status = StatusFile(opts.out, label, runs, limit, on_write=lambda path: folder.push(path.name))
    pending, failed, eta = {}, [], Eta(len(todo), label)

    def where(r: GridRun) -> str:  # on s3://, tasks get the run's folder relative to the grid's
        return r.dir(Path("")).as_posix() if opts.out_uri else str(r.dir(opts.out))

    def ready(r: GridRun) -> bool:
        lead = first.get(r.dataset)
        return not regenerates(r) or lead is None or lead is r or lead not in todo

    def fill() -> None:
        while todo and (limit is None or len(pending) < limit):
            nxt = next((r for r in todo if ready(r) and r not in pending.values()), None)
            if nxt is None:
                return
            pending[task.remote(fields_of(nxt), where(nxt), nxt.seed, opts.out_uri)] = nxt
            status.started(nxt)

    fill()
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        r = pending.pop(ref)
        todo.remove(r)
        folder.pull(r.dir(Path("")).as_posix(), skip=weights)  # it may have run on another node
        try:
            out = ray.get(ref)
            eta.step(f"runs ({r.label}: test N@20 {out['ndcg@20']:.4f}, {out['epochs']} epochs)")
            status.ended(r, "finished")
        except Exception as exc:  # one failed run must not stop the grid; it is listed at the end
            failed.append(f"{r.label}: {str(exc).strip().splitlines()[-1]}")
            eta.step(f"runs ({r.label} FAILED)")
            status.ended(r, "failed", failed[-1])
        fill()
        on_done()
    status.close()
    return failed


def _union(old: list, new: list) -> list:
    return list(old) + [x for x in new if x not in old]


def record_plan(out: Path, runs: list[GridRun], variants: list[str], data: dict[str, str], opts: GridOptions) -> dict:
    """`<out>/grid.json`: what this folder's grids asked for. A second grid into the same folder (e.g.
    more backbones at one seed) adds its runs, so the table and `--status` cover both."""
    old = json.loads((out / "grid.json").read_text()) if (out / "grid.json").is_file() else {}
    if old and bool(old.get("smoke_test")) != opts.smoke_test:
        raise ConfigError(f"{out}: holds a {'smoke-test' if old.get('smoke_test') else 'full-size'} grid; "
                          f"use another --out for a {'smoke-test' if opts.smoke_test else 'full-size'} one")
    meta = {"datasets": _union(old.get("datasets", []), list(data)),
            "backbones": _union(old.get("backbones", []), opts.backbones),
            "baselines": _union(old.get("baselines", []), opts.baselines),
            "variants": _union(old.get("variants", []), variants),
            "seeds": sorted(set(old.get("seeds", [])) | {r.seed for r in runs}),
            "smoke_test": opts.smoke_test, "space": opts.space or old.get("space"),
            "data": {**old.get("data", {}), **data},
            "runs": _union(old.get("runs", []), [[r.dataset, r.backbone, r.variant, r.seed] for r in runs])}
    atomic_write_text(out / "grid.json", json.dumps(meta, indent=2))
    return meta


def planned_runs(out: Path) -> list[GridRun]:
    """The runs `<out>/grid.json` records, in their start order."""
    path = Path(out) / "grid.json"
    if not path.is_file():
        raise ConfigError(f"--out {out}: holds no grid (no grid.json)")
    meta = json.loads(path.read_text())
    runs = [GridRun(d, b, v, int(s), meta["data"].get(d, d)) for d, b, v, s in meta.get("runs", [])]
    models = meta["backbones"] + meta.get("baselines", [])
    variants = meta["variants"] + [BASELINE_VARIANT]
    return sorted(runs, key=lambda r: (r.seed, models.index(r.backbone), meta["datasets"].index(r.dataset),
                                       variants.index(r.variant)))


def grid_title(meta: dict) -> str | None:
    """The first line of a smoke grid's every table and figure: its numbers are not results."""
    if not meta.get("smoke_test"):
        return None
    return f"SMOKE TEST ({SMOKE_USERS}-user samples, 2 epochs): not a result"


def write_grid_table(out: Path, meta: dict) -> list[Path]:
    from dr4sr.search.tables import head_to_head, table3_rows, write_table3

    paper = not meta.get("smoke_test")
    rows = table3_rows(out, meta["datasets"], meta.get("baselines", []), [BASELINE_VARIANT], meta["seeds"],
                       baseline=BASELINE_VARIANT, paper=paper)
    rows += table3_rows(out, meta["datasets"], meta["backbones"], meta["variants"], meta["seeds"], paper=paper)
    duels = head_to_head(out, meta["datasets"], meta["backbones"], meta["seeds"])
    return write_table3(rows, out, title=grid_title(meta), figures=True, duels=duels)


def run_grid(opts: GridOptions) -> dict:
    from dr4sr.train.ray_train import ensure_ray

    opts.validate()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data = resolve_data(opts)
    runs = plan(opts, data)
    seeds = sorted({r.seed for r in runs})
    variants = list(opts.variants) + ([TUNED] if opts.space else [])
    meta = record_plan(out, runs, variants, data, opts)
    from dr4sr.search.grid_tracking import GridTracking

    tracking = GridTracking(out, opts.storage, opts.track)  # the cells as an Optuna study (and MLflow/W&B runs)
    tracking.save()
    tracking.record()  # cells that ended before: a resumed or formerly untracked grid
    tracking.announce()

    folder = opts.folder()
    folder.push("grid.json")
    folder.push("data")

    def table() -> None:
        write_grid_table(out, meta)
        tracking.record_quietly()
        folder.push(recursive=False)  # table3.*, the figures

    ensure_ray(dashboard=True)  # the per-cell studies' Train runs need the dashboard's State API
    failed = execute(opts, runs, lambda r: request_fields(opts, r), table)
    if opts.space:
        from dr4sr.search.tuned import tune_cells

        failed += tune_cells(opts, data, seeds, table)
    table()
    folder.push(skip=weights)  # whatever else the driver wrote (the cells' studies)
    summary = {"runs": len(runs), "failed": failed, "wall_seconds": round(time.time() - started, 1),
               "table": str(out / "table3.md")}
    print((out / "table3.md").read_text(), flush=True)
    print(f"[grid] {len(runs)} runs in {summary['wall_seconds']:.0f} s; wrote {out}/table3.md, .tex, .csv", flush=True)
    if failed:
        print("[grid] failed:\n  " + "\n  ".join(failed), flush=True)
    return summary
