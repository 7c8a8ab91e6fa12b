"""How a training worker sets DR4SR+ up: which rows are fixed, which rows the dev loss reads, the
loop hook, and the outputs (every training target's weight, and the numbers for metrics.json).

`PersonalizerSetup` is the run extension (dr4sr.train.extensions) that `register()` installs for the
run config's `personalizer` section; importing dr4sr.personalizer registers it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dr4sr.data.batching import Mode, TrainBatcher, scoring_mode
from dr4sr.personalizer.bilevel import PersonalizerHook
from dr4sr.train.config import PersonalizerConfig, RunConfig
from dr4sr.train.extensions import Extension, RunExtension
from dr4sr.train.extensions import register as register_extension
from dr4sr.train.loop import LoopContext
from dr4sr.train.losses import hidden_for_targets

DEV_SEED_OFFSET = 7919  # the dev pass shuffles differently from the training pass


def fixed_mask(sources: Sequence[str] | None, fixed_sources: Sequence[str], n_rows: int) -> np.ndarray | None:
    """True for rows whose source is never re-weighted; None when nothing is fixed."""
    if sources is None or not fixed_sources:
        return None
    if len(sources) != n_rows:
        raise ValueError(f"{len(sources)} row sources for {n_rows} training rows")
    mask = np.isin(np.asarray(sources, dtype=object), list(fixed_sources))
    return mask if mask.any() else None


def source_presets(cfg: PersonalizerConfig, sources: Sequence[str] | None, n_rows: int) -> np.ndarray | None:
    """mode=constant with source_weights: every row's weight by its source; else None (one constant)."""
    if cfg.mode != "constant" or not cfg.source_weights or sources is None:
        return None
    if len(sources) != n_rows:
        raise ValueError(f"{len(sources)} row sources for {n_rows} training rows")
    weights = {s: cfg.row_weight(s) for s in set(sources)}
    return np.fromiter((weights[s] for s in sources), dtype=np.float32, count=n_rows)


def holdout_split(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out dev rows), a seeded split; at least one row on each side."""
    order = np.random.default_rng([seed, DEV_SEED_OFFSET]).permutation(n_rows)
    n_dev = min(max(1, int(round(fraction * n_rows))), n_rows - 1)
    return np.sort(order[n_dev:]), np.sort(order[:n_dev])


class PersonalizerSetup(RunExtension):
    """Built on every worker from the run config and the training rows (the same on every rank)."""

    def __init__(self, cfg: PersonalizerConfig, sequences: Sequence[np.ndarray], row_weights: np.ndarray | None,
                 sources: Sequence[str] | None, mode: Mode, max_len: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.cfg, self.mode, self.max_len, self.seed = cfg, mode, max_len, seed
        self.sequences, self.row_weights = list(sequences), row_weights
        # a source given its own weight is weighed, not fixed, even at 1: it counts in the weight statistics
        self.fixed = fixed_mask(sources, [s for s in cfg.fixed_sources if s not in cfg.source_weights],
                                len(self.sequences))
        self.preset = source_presets(cfg, sources, len(self.sequences))
        train_idx = np.arange(len(self.sequences))
        dev_idx = train_idx
        if cfg.dev_batch == "holdout":
            train_idx, dev_idx = holdout_split(len(self.sequences), cfg.holdout_fraction, seed)
        self.train_idx = train_idx
        pick = lambda a, idx: None if a is None else np.asarray(a)[idx]  # noqa: E731
        self.dev_batcher = TrainBatcher([self.sequences[i] for i in dev_idx], batch_size, mode, max_len,
                                        pick(row_weights, dev_idx), seed + DEV_SEED_OFFSET, rank, world_size)
        self.theta_rows = ([self.sequences[i] for i in train_idx], pick(row_weights, train_idx),
                           pick(self.fixed, train_idx))
        self.theta_preset = pick(self.preset, train_idx)
        self.loop_hook: PersonalizerHook | None = None

    def train_rows(self, sequences, row_weights):
        """The rows theta trains on (all but the held-out dev rows), their weights, the fixed ones."""
        return self.theta_rows

    def row_presets(self):
        return self.theta_preset

    def hook(self, loss: str, aux_loss=None) -> PersonalizerHook:
        self.loop_hook = PersonalizerHook(self.cfg, loss, self.seed, self.dev_batcher, aux_loss)
        return self.loop_hook

    def results(self, model, ctx: LoopContext) -> tuple[dict, dict]:
        """metrics.json's `personalizer` section, and g_phi's weight of every training target (rank 0) and
        its best state as files."""
        table = self.score_rows(model, ctx.device) if ctx.rank == 0 else None  # the best epoch's weights
        state = {k: v.cpu() for k, v in self.loop_hook.scorer.state_dict().items()}
        return self.summary(table), {"personalizer_weights.parquet": table, "personalizer.pt": state}

    @torch.no_grad()
    def score_rows(self, model, device: torch.device, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """The noise-free weight g_phi gives every target of every training row, with the model in eval
        mode: columns row (index into the training rows), position (index of the target item in its
        row), weight, fixed (kept at 1). A Cloze backbone is scored on each target alone masked."""
        batcher = TrainBatcher(self.sequences, batch_size, scoring_mode(self.mode), self.max_len, None, 0, 0, 1,
                               self.fixed, self.preset)
        was_training = model.training
        model.eval()
        parts: dict[str, list] = {"row": [], "position": [], "weight": [], "fixed": []}
        for rows in np.array_split(np.arange(batcher.num_rows), max(1, len(batcher))):
            batch = batcher.collate(rows).to(device)
            hidden = hidden_for_targets(model, batch.inputs, batch.lengths, batch.targets)
            w = self.loop_hook.weigh(hidden, preset=batch.preset)
            fixed = torch.zeros(len(rows), dtype=torch.bool, device=device) if batch.fixed is None else batch.fixed
            w = torch.where(fixed[:, None], torch.ones_like(w), w)
            real = (batch.targets > 0).cpu().numpy()
            seq = batcher.row_seq[rows]
            pos = batcher.target_positions(rows, real.shape[1])
            ii, jj = np.nonzero(real)
            parts["row"].append(seq[ii])
            parts["position"].append(np.asarray(pos)[ii, jj])
            parts["weight"].append(w.float().cpu().numpy()[ii, jj])
            parts["fixed"].append(fixed.cpu().numpy()[ii])
        model.train(was_training)
        return {"row": np.concatenate(parts["row"]).astype(np.int64),
                "position": np.concatenate(parts["position"]).astype(np.int32),
                "weight": np.concatenate(parts["weight"]).astype(np.float32),
                "fixed": np.concatenate(parts["fixed"]).astype(bool)}

    def summary(self, table: dict[str, np.ndarray] | None) -> dict:
        out = self.loop_hook.summary()
        out.update(fixed_rows=int(0 if self.fixed is None else self.fixed.sum()), rows=len(self.sequences),
                   dev_batch=self.cfg.dev_batch)
        if table is not None:
            w = table["weight"][~table["fixed"]]
            out.update(weight_mean=float(w.mean()) if len(w) else float("nan"),
                       weight_std=float(w.std()) if len(w) else float("nan"),
                       weighted_targets=int(len(w)))
        return out


def setup_run(cfg: RunConfig, inp, training_mode: Mode, ctx: LoopContext) -> PersonalizerSetup:
    """The extension's `setup`, on every training worker (inp: dr4sr.train.worker.TrainingInput)."""
    return PersonalizerSetup(cfg.personalizer, inp.sequences, inp.row_weights, inp.row_sources, training_mode,
                             inp.splits.max_len, cfg.train.batch_size, cfg.train.seed, ctx.rank, ctx.world_size)


def describe(p: dict) -> str:
    """The personalizer's line of `format_metrics`."""
    return (f"personalizer ({p['mode']}): {p['upper_steps']} upper steps in {p['upper_seconds']:.1f} s, "
            f"weights {p.get('weight_mean', float('nan')):.3f} ± {p.get('weight_std', float('nan')):.3f}")


def register() -> None:
    register_extension(Extension("personalizer", setup_run, describe))
