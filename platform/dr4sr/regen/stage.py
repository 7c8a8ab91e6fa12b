"""The work of the `pretrain` and `regenerate` stages (dr4sr.stages stores them as artifacts and chains
mine -> SASRec init (a `train` artifact) -> pretrain -> regenerate), and their config keys.

The regenerate artifact holds `dataset.parquet`: rows (sequence list<int64>, user, k, source) with
source in {original, mined (the paired patterns), generated}; mined and generated rows are deduplicated
within their source (k = -1 for non-generated rows). What a target model trains on is composed from its
generated rows, the original rows and the mine artifact's patterns per the `compose` config
(regen/compose.py; `training_sequences` below); stats.json describes those rows for the config it was
built with.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dr4sr.artifacts import Artifact
from dr4sr.config import to_dict
from dr4sr.data.splits import Splits
from dr4sr.data.stats import sequence_stats
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.regen.compose import COMPOSITIONS as _COMPOSITIONS
from dr4sr.regen.compose import (
    ComposeConfig,
    composition_rows,
    list_array,
    load_mined,
    read_dataset,
    regenerated_parts,
    regenerated_rows,
    source_rows,
)
from dr4sr.regen.config import RegenPipelineConfig, key_dict
from dr4sr.regen.pairs import PairData, build_pair_data
from dr4sr.regen.pretrain import PretrainInput, pretrain_local, pretrain_ray
from dr4sr.regen.regenerate import list_column, regenerate
from dr4sr.train.worker import CHECKPOINT_NAME, CheckpointError, load_checkpoint

COMPOSITIONS = tuple(_COMPOSITIONS)
Log = Callable[[str], None]


# ---- inputs from the mine artifact --------------------------------------------------------------
def pair_data_from_mine(splits: Splits, mine_path: str | Path) -> PairData:
    patterns, pair_user, pair_pattern = load_mined(mine_path)
    return build_pair_data(splits.train, splits.users, patterns, pair_user, pair_pattern)


# ---- SASRec initialisation ----------------------------------------------------------------------
def init_run_config(cfg: RegenPipelineConfig):
    from dr4sr.train.runner import build_run_config

    return build_run_config("sasrec", overrides=cfg.init.sasrec)


# ---- pretrain -----------------------------------------------------------------------------------
def pretrain_key(cfg: RegenPipelineConfig) -> dict:
    pre = {k: v for k, v in key_dict("pretrain", cfg.pretrain).items() if k != "device"}
    init = cfg.init.mode if "copy" not in key_dict("init", cfg.init) else f"{cfg.init.mode}/{cfg.init.copy}"
    return {"regen": to_dict(cfg.regen), "pretrain": pre, "init": init}


def pretrain_into(w, splits: Splits, cfg: RegenPipelineConfig, mine_path: Path, init_path: Path | None,
                  workers: int = 1, gpus: bool = False, log: Log = print) -> None:
    """Pre-train into an artifact writer's staging folder (dr4sr.stages runs it). The folder belongs to this
    id: its checkpoint is a killed run of this very config, resumed."""
    if cfg.init.mode == "sasrec" and init_path is None:
        raise ConfigError("init.mode is 'sasrec' but no SASRec init artifact was given")
    data = pair_data_from_mine(splits, mine_path)
    if len(data) < 2:
        raise DR4SRError(f"mine artifact {mine_path} has {len(data)} pairs; pre-training needs at least 2")
    train, valid = data.split(cfg.pretrain.valid_fraction, cfg.pretrain.seed)
    init_state = load_checkpoint(Path(init_path) / "model.pt") if init_path else None
    started = time.time()
    ckpt = w.dir / "checkpoints"
    resume_state = None
    if (ckpt / CHECKPOINT_NAME).exists():
        try:
            resume_state = load_checkpoint(ckpt / CHECKPOINT_NAME)
        except CheckpointError as exc:
            log(f"discarding the unreadable checkpoint of a killed run ({exc})")
            shutil.rmtree(ckpt)
    inp = PretrainInput(cfg.regen, cfg.pretrain, splits.num_items, train, valid, init_state,
                        str(ckpt.resolve()), init_copy=cfg.init.copy)
    log(f"pre-training the regenerator on {len(train):,} pairs ({len(valid):,} held out), "
        f"{'Ray Train x' + str(workers) if workers > 1 else 'local'}")
    if workers > 1:
        out = pretrain_ray(inp, workers, gpus, str((w.dir / "ray").resolve()), resume_state)
    else:
        out = pretrain_local(inp, resume=resume_state is not None, log=log, gpus=gpus,  # s3://: to the bucket
                             on_checkpoint=w.save_progress)
    metrics = {**out["metrics"], "num_items": splits.num_items, "wall_seconds": time.time() - started,
               "workers": workers}
    for scratch in ("checkpoints", "ray"):
        shutil.rmtree(w.dir / scratch, ignore_errors=True)
    with open(w.dir / "model.pt", "wb") as f:
        torch.save(out["model_state"], f)
    (w.dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    w.info.update({"preset": cfg.preset, "init_data": cfg.init.data,
                   "best_valid_loss": metrics["best_valid_loss"], "epochs": metrics["epochs"],
                   "rows": {"train_pairs": len(train), "valid_pairs": len(valid)}})


# ---- regenerate ---------------------------------------------------------------------------------
def regenerate_key(cfg: RegenPipelineConfig) -> dict:
    # batch size and device do not change the rows (counter-based coins), so they stay out of the id
    return {k: v for k, v in key_dict("regenerate", cfg.regenerate).items() if k not in ("batch_size", "device")}


def _dedupe(seqs: list[np.ndarray], seen: set | None = None) -> np.ndarray:
    """Indices of the first occurrence of each distinct sequence (not already in `seen`)."""
    seen = set() if seen is None else seen
    keep = []
    for i, s in enumerate(seqs):
        key = s.tobytes()
        if len(s) and key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _rows(source: str, users: np.ndarray, ks: np.ndarray, seqs: list[np.ndarray]) -> pa.Table:
    return pa.table({"sequence": list_array(seqs),
                     "user": pa.array(np.asarray(users, dtype=np.int64)), "k": pa.array(np.asarray(ks, dtype=np.int64)),
                     "source": pa.array([source] * len(seqs), pa.string())})


def build_dataset(splits: Splits, mine_path: str | Path, generated: pa.Table) -> pa.Table:
    patterns, pair_user, pair_pattern = load_mined(mine_path)
    original = _rows("original", splits.users, np.full(len(splits.train), -1), list(splits.train))
    mined_seqs = [patterns[p] for p in pair_pattern]
    keep = _dedupe(mined_seqs)
    mined = _rows("mined", pair_user[keep], np.full(len(keep), -1), [mined_seqs[i] for i in keep])
    gen_seqs = list_column(generated, "sequence")
    keep = _dedupe(gen_seqs)
    gen = _rows("generated", generated.column("user").to_numpy()[keep], generated.column("k").to_numpy()[keep],
                [gen_seqs[i] for i in keep])
    return pa.concat_tables([original, mined, gen])


def training_sequences(artifact: Artifact | str | Path, composition: str = "regenerated+mined+original",
                       compose: ComposeConfig | None = None) -> list[np.ndarray]:
    """The rows a target model trains on for `composition` (see COMPOSITIONS) of a regenerate artifact in a
    store, under `compose` (default: the config's defaults); the mine artifact is read from the same store."""
    path = Path(artifact.path if isinstance(artifact, Artifact) else artifact)
    table = read_dataset(path)
    mine_id = json.loads((path / "manifest.json").read_text())["inputs"]["mine"]
    return regenerated_rows(composition, compose or ComposeConfig(), source_rows(table, "original"),
                            path.parent.parent / "mine" / mine_id, table).rows


def composition_stats(splits: Splits, mine_path: str | Path, table: pa.Table, compose: ComposeConfig) -> dict:
    """Statistics of the rows a target model trains on, per composition, under `compose` (recorded with
    them: the regenerate artifact's id does not hold it, so a run with another compose reuses the artifact)."""
    parts = regenerated_parts(splits.train, mine_path, table, compose.mined)
    out: dict = {"compose": to_dict(compose), "training_rows": {}}
    for comp in COMPOSITIONS:
        rows = composition_rows(comp, parts, compose.dedupe)
        out["training_rows"][comp] = rows.counts()
        out[comp] = sequence_stats(rows.rows, num_items=splits.num_items)
    return out


def regenerate_into(w, splits: Splits, cfg: RegenPipelineConfig, pretrain_path: Path, mine_path: Path,
                    workers: int = 1, log: Log = print) -> None:
    """Decode the regenerated dataset into an artifact writer's staging folder (dr4sr.stages runs it)."""
    state = load_checkpoint(Path(pretrain_path) / "model.pt")
    model_cfg = cfg.regen
    t0 = time.time()
    generated = regenerate(state, model_cfg, splits.num_items, splits.train, splits.users, cfg.regenerate,
                           workers, log=log)
    seconds = time.time() - t0
    log(f"regenerated {len(splits.train):,} sequences x K={model_cfg.k} in {seconds:.1f}s "
        f"({len(splits.train) / max(seconds, 1e-9):.0f} sequences/s)")
    table = build_dataset(splits, mine_path, generated)
    source = table.column("source").to_numpy(zero_copy_only=False)
    gen_k = table.column("k").to_numpy()[source == "generated"]
    decoded_k = generated.column("k").to_numpy()
    empty = np.diff(generated.column("sequence").combine_chunks().offsets.to_numpy()) == 0
    stats = {"decode_seconds": seconds, "workers": workers, "generated_rows_before_dedupe": generated.num_rows,
             "rows": {s: int(np.sum(source == s)) for s in ("original", "mined", "generated")},
             # per memory: decodes, rows dropped as too short, distinct rows kept (first memory wins a tie)
             "rows_by_memory": {int(k): {"decoded": int(np.sum(decoded_k == k)),
                                         "dropped_short": int(np.sum(empty & (decoded_k == k))),
                                         "kept": int(np.sum(gen_k == k))} for k in np.unique(decoded_k)}}
    stats.update(composition_stats(splits, mine_path, table, cfg.compose))
    pq.write_table(table, w.dir / "dataset.parquet")
    (w.dir / "stats.json").write_text(json.dumps(stats, indent=2))
    w.info.update({"preset": cfg.preset, "rows": stats["rows"], "rows_by_memory": stats["rows_by_memory"],
                   "decode_seconds": round(seconds, 3)})
