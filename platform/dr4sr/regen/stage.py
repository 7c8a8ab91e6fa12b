"""Stages `pretrain` and `regenerate` as content-addressed artifacts, and the whole chain
mine -> SASRec init (a `train` artifact) -> pretrain -> regenerate behind `regenerate_pipeline`.

The regenerate artifact holds `dataset.parquet`: rows (sequence list<int64>, user, k, source) with
source in {original, mined, generated}; mined and generated rows are deduplicated within their
source (k = -1 for non-generated rows). `training_sequences` assembles a composition from it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dr4sr.artifacts import Artifact, ArtifactStore, artifact_id
from dr4sr.config import to_dict
from dr4sr.data.splits import Splits
from dr4sr.data.stats import sequence_stats
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.regen.compose import COMPOSITIONS as _COMPOSITIONS
from dr4sr.regen.compose import composition_rows, load_mined, pattern_rows, table_parts
from dr4sr.regen.config import RegenPipelineConfig, key_dict
from dr4sr.regen.pairs import PairData, build_pair_data
from dr4sr.regen.pretrain import PretrainInput, pretrain_local, pretrain_ray
from dr4sr.regen.regenerate import list_column, regenerate

COMPOSITIONS = tuple(_COMPOSITIONS)
Log = Callable[[str], None]


# ---- inputs from the mine artifact --------------------------------------------------------------
def pair_data_from_mine(splits: Splits, mine_path: str | Path) -> PairData:
    patterns, pair_user, pair_pattern = load_mined(mine_path)
    return build_pair_data(splits.train, splits.users, patterns, pair_user, pair_pattern)


# ---- SASRec initialisation ----------------------------------------------------------------------
def init_rows(splits: Splits, cfg: RegenPipelineConfig, mine: Artifact):
    """(rows, data id) the init SASRec trains on; the same rows and id as `dr4sr run --variant backbone`
    (init.data=original) or `--variant pattern` (init.data=pattern), so that run's artifact is reused."""
    if cfg.init.data == "original":
        return None, "original"
    rows = pattern_rows(splits.train, mine.path, cfg.compose)
    return rows.rows, rows.data_id("mined+original")


def sasrec_init_stage(splits: Splits, cfg: RegenPipelineConfig, store: ArtifactStore, mine: Artifact,
                      workers: int = 1, gpus: bool = False, log: Log = print) -> Artifact | None:
    """A `train` artifact of SASRec on init.data (None when init.mode = scratch)."""
    if cfg.init.mode == "scratch":
        return None
    from dr4sr.train.runner import build_run_config, cached_train

    run_cfg = build_run_config("sasrec", overrides=cfg.init.sasrec)
    rows, data_id = init_rows(splits, cfg, mine)
    return cached_train(store, run_cfg, splits, rows, data_id, workers, gpus, log)


# ---- pretrain -----------------------------------------------------------------------------------
def pretrain_key(cfg: RegenPipelineConfig) -> dict:
    pre = {k: v for k, v in key_dict("pretrain", cfg.pretrain).items() if k != "device"}
    init = cfg.init.mode if "copy" not in key_dict("init", cfg.init) else f"{cfg.init.mode}/{cfg.init.copy}"
    return {"regen": to_dict(cfg.regen), "pretrain": pre, "init": init}


def pretrain_stage(splits: Splits, cfg: RegenPipelineConfig, store: ArtifactStore, mine: Artifact,
                   init: Artifact | None, workers: int = 1, gpus: bool = False, log: Log = print) -> Artifact:
    inputs = {"splits": splits.fingerprint, "mine": mine.id, "init": init.id if init else "scratch"}
    key = pretrain_key(cfg)
    found = store.get("pretrain", artifact_id("pretrain", key, inputs))
    if found is not None:
        log(f"reusing pretrained regenerator {found.path}")
        return found
    if cfg.init.mode == "sasrec" and init is None:
        raise ConfigError("init.mode is 'sasrec' but no SASRec init artifact was given")
    data = pair_data_from_mine(splits, mine.path)
    if len(data) < 2:
        raise DR4SRError(f"mine artifact {mine.path} has {len(data)} pairs; pre-training needs at least 2")
    train, valid = data.split(cfg.pretrain.valid_fraction, cfg.pretrain.seed)
    init_state = torch.load(init.path / "model.pt", map_location="cpu", weights_only=True) if init else None
    started = time.time()
    with store.create("pretrain", key, inputs) as w:
        inp = PretrainInput(cfg.regen, cfg.pretrain, splits.num_items, train, valid, init_state,
                            str((w.dir / "checkpoints").resolve()), init_copy=cfg.init.copy)
        log(f"pre-training the regenerator on {len(train):,} pairs ({len(valid):,} held out), "
            f"{'Ray Train x' + str(workers) if workers > 1 or gpus else 'local'}")
        if workers > 1 or gpus:
            out = pretrain_ray(inp, workers, gpus, str((w.dir / "ray").resolve()))
        else:
            out = pretrain_local(inp, log=log)
        metrics = {**out["metrics"], "num_items": splits.num_items, "wall_seconds": time.time() - started,
                   "workers": workers}
        with open(w.dir / "model.pt", "wb") as f:
            torch.save(out["model_state"], f)
        (w.dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        w.info.update({"preset": cfg.preset, "init_data": cfg.init.data,
                       "best_valid_loss": metrics["best_valid_loss"], "epochs": metrics["epochs"],
                       "rows": {"train_pairs": len(train), "valid_pairs": len(valid)}})
    return w.artifact


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
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    values = np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, dtype=np.int64)
    return pa.table({"sequence": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64())),
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


def composition_sequences(table: pa.Table, composition: str) -> list[np.ndarray]:
    """A composition of the artifact's own rows (paired mined patterns), each distinct sequence once."""
    return composition_rows(composition, table_parts(table), "across").rows


def training_sequences(artifact: Artifact | str | Path, composition: str = "regenerated+mined+original") -> list[np.ndarray]:
    """Training rows of a regenerate artifact for `composition` (see COMPOSITIONS)."""
    path = Path(artifact.path if isinstance(artifact, Artifact) else artifact) / "dataset.parquet"
    if not path.exists():
        raise DR4SRError(f"{path.parent}: not a regenerate artifact (missing dataset.parquet)")
    return composition_sequences(pq.read_table(path), composition)


def regenerate_stage(splits: Splits, cfg: RegenPipelineConfig, store: ArtifactStore, pretrain: Artifact,
                     mine: Artifact, workers: int = 1, log: Log = print) -> Artifact:
    inputs = {"splits": splits.fingerprint, "pretrain": pretrain.id, "mine": mine.id}
    key = regenerate_key(cfg)
    found = store.get("regenerate", artifact_id("regenerate", key, inputs))
    if found is not None:
        log(f"reusing regenerated dataset {found.path}")
        return found
    state = torch.load(pretrain.path / "model.pt", map_location="cpu", weights_only=True)
    model_cfg = cfg.regen
    t0 = time.time()
    generated = regenerate(state, model_cfg, splits.num_items, splits.train, splits.users, cfg.regenerate, workers)
    seconds = time.time() - t0
    log(f"regenerated {len(splits.train):,} sequences x K={model_cfg.k} in {seconds:.1f}s "
        f"({len(splits.train) / max(seconds, 1e-9):.0f} sequences/s)")
    table = build_dataset(splits, mine.path, generated)
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
    for comp in COMPOSITIONS:
        stats[comp] = sequence_stats(composition_sequences(table, comp), num_items=splits.num_items)
    with store.create("regenerate", key, inputs) as w:
        pq.write_table(table, w.dir / "dataset.parquet")
        (w.dir / "stats.json").write_text(json.dumps(stats, indent=2))
        w.info.update({"preset": cfg.preset, "rows": stats["rows"], "rows_by_memory": stats["rows_by_memory"],
                       "decode_seconds": round(seconds, 3)})
    return w.artifact


# ---- the whole chain ----------------------------------------------------------------------------
def regenerate_pipeline(splits: Splits, cfg: RegenPipelineConfig, store: ArtifactStore, workers: int = 1,
                        log: Log = print, gpus: bool = False) -> Artifact:
    """mine -> SASRec init (unless scratch) -> pretrain -> regenerate; every stage reuses its cached artifact."""
    mine = mine_stage(splits, cfg, store, workers, log)
    init = sasrec_init_stage(splits, cfg, store, mine, workers, gpus, log)
    pre = pretrain_stage(splits, cfg, store, mine, init, workers, gpus, log)
    return regenerate_stage(splits, cfg, store, pre, mine, workers, log)


def mine_stage(splits: Splits, cfg: RegenPipelineConfig, store: ArtifactStore, workers: int = 1,
               log: Log = print) -> Artifact:
    from dr4sr.mining.stage import run_mine_stage

    art = run_mine_stage(splits, dict(cfg.mine), store, workers if workers > 1 else None)
    log(f"mine artifact {art.path}")
    return art
