"""Training batches: length-grouped, padded to each batch's own longest row, sharded for DDP.

Sequences average 6-10 items; padding every batch to 50 made an epoch ~7x slower, so rows are
grouped by length inside shuffled mega-batches. Every rank builds the same global batches from the
same seed and takes rows `rank::world` of each, so DDP sees the same global batch as one process.
A backbone's `training_mode` says which targets a row holds: "seq2seq", "last" or a `Cloze`.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Literal, Sequence

import numpy as np
import torch

MEGA_BATCH = 50  # batches per length-sorted group: enough locality, still well shuffled
_LAST_LANE = 1 << 32  # hash lane of a row's "mask only the last item" draw (positions are < 2^32)


@dataclasses.dataclass(frozen=True)
class Cloze:
    """The masked-item (Cloze) mode of bidirectional backbones such as BERT4Rec.

    A row is one sequence, its last max_len items right-padded. Each real item is replaced by
    `mask_token` with probability `mask_prob` and is a target there (0 elsewhere); a row that drew no
    mask masks its lowest-draw item, so every row trains. With probability `last_prob` a row masks only
    its last item instead, the task evaluation poses (BERT4Rec's extra "mask last" instances).
    Draws hash (seed, epoch, row, position): a row gets the same mask on whichever DDP rank holds it,
    and a resumed epoch repeats exactly. `probe`: every (row, position) once, that item alone masked,
    no randomness (a pass over every target, e.g. DR4SR+'s weight table).
    """
    mask_token: int
    mask_prob: float = 0.2
    last_prob: float = 0.0
    probe: bool = False


Mode = Literal["seq2seq", "last"] | Cloze


def scoring_mode(mode: Mode) -> Mode:
    """The mode of a deterministic pass over every training target (random draws only in training)."""
    return dataclasses.replace(mode, probe=True) if isinstance(mode, Cloze) else mode


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (multiplication wraps)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_uniforms(seed: int, epoch: int, rows: np.ndarray, lanes: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) of shape (len(rows), len(lanes)), a pure function of (seed, epoch, row, lane)."""
    word = lambda v: np.array([int(v) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)  # noqa: E731
    base = _splitmix(_splitmix(word(seed)) ^ word(epoch))
    per_row = _splitmix(base ^ np.asarray(rows, dtype=np.uint64))
    x = _splitmix(per_row[:, None] ^ np.asarray(lanes, dtype=np.uint64)[None, :])
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


@dataclasses.dataclass
class Batch:
    inputs: torch.Tensor  # (B, L) item ids, 0 = padding
    lengths: torch.Tensor  # (B,) real lengths of `inputs`
    targets: torch.Tensor  # (B, L) next item per position (seq2seq) or (B, 1) for "last"; 0 = none
    weights: torch.Tensor | None = None  # per-target weights, same shape as targets
    rows: torch.Tensor | None = None  # index of each row in the training data
    fixed: torch.Tensor | None = None  # (B,) bool: rows the DR4SR+ personalizer never re-weights
    preset: torch.Tensor | None = None  # (B,) float: each row's weight in the personalizer's constant mode

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.inputs), move(self.lengths), move(self.targets), move(self.weights), move(self.rows),
                     move(self.fixed), move(self.preset))


def pad_sequences(seqs: Sequence[np.ndarray], side: Literal["right", "left"] = "right",
                  length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest row (or `length`), keeping the most recent items when cutting."""
    lengths = np.fromiter((min(len(s), length or len(s)) for s in seqs), dtype=np.int64, count=len(seqs))
    width = int(length or (lengths.max() if len(lengths) else 1))
    out = np.zeros((len(seqs), max(width, 1)), dtype=np.int64)
    for i, (s, n) in enumerate(zip(seqs, lengths)):
        if n:
            if side == "right":
                out[i, :n] = s[len(s) - n:]
            else:
                out[i, width - n:] = s[len(s) - n:]
    return out, lengths


class TrainBatcher:
    """Iterates training batches over `sequences` for one epoch at a time.

    mode "seq2seq": row = one sequence, input s[:-1], targets s[1:] (every position is a target).
    mode "last": row = one prefix, input s[:t] (left-padded), target s[t], for every t >= 1.
    mode Cloze: row = one sequence, its last max_len items with some masked (see `Cloze`); rows of one
    item are skipped as in the other modes, so every mode trains on the same rows.
    """

    def __init__(self, sequences: Sequence[np.ndarray], batch_size: int, mode: Mode = "seq2seq",
                 max_len: int = 50, row_weights: np.ndarray | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, row_fixed: np.ndarray | None = None,
                 row_preset: np.ndarray | None = None):
        if batch_size < world_size:
            raise ValueError(f"batch_size {batch_size} is smaller than the number of workers {world_size}")
        self.sequences = [np.asarray(s, dtype=np.int64)[-(max_len + 1):] for s in sequences]
        self.batch_size, self.mode, self.max_len = batch_size, mode, max_len
        self.row_weights = row_weights
        self.row_fixed = None if row_fixed is None else np.asarray(row_fixed, dtype=bool)  # per sequence
        self.row_preset = None if row_preset is None else np.asarray(row_preset, dtype=np.float32)  # per sequence
        self.seed, self.rank, self.world_size = seed, rank, world_size
        lens = np.fromiter((len(s) for s in self.sequences), dtype=np.int64, count=len(self.sequences))
        usable = np.nonzero(lens >= 2)[0]
        self.skipped_rows = int(len(lens) - len(usable))  # rows with no target (length < 2)
        self.row_pos = None  # Cloze probe: the one masked position of each row
        if mode == "last":
            counts = lens[usable] - 1
            self.row_seq = np.repeat(usable, counts)
            self.row_end = self._offsets(counts) + 1  # predict s[end] from s[:end]
        elif isinstance(mode, Cloze) and mode.probe:
            counts = np.minimum(lens[usable], max_len)
            self.row_seq, self.row_pos = np.repeat(usable, counts), self._offsets(counts)
            self.row_end = lens[self.row_seq]
        else:
            self.row_seq, self.row_end = usable, lens[usable]
        inputs = self.row_end - 1 if mode == "seq2seq" else self.row_end  # cloze: the whole row is input
        self.row_len = np.minimum(inputs, max_len)

    @staticmethod
    def _offsets(counts: np.ndarray) -> np.ndarray:
        """0..count-1 for each count, concatenated."""
        return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)

    @property
    def num_rows(self) -> int:
        return len(self.row_seq)

    def num_targets(self) -> int:
        """Targets of an epoch; for Cloze every item a mask may pick (what a probe pass covers)."""
        if self.mode == "last" or (isinstance(self.mode, Cloze) and self.mode.probe):
            return self.num_rows
        return int(self.row_len.sum())

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_rows)
        group = self.batch_size * MEGA_BATCH
        batches = []
        for start in range(0, len(order), group):
            chunk = order[start:start + group]
            chunk = chunk[np.argsort(self.row_len[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        # every rank needs at least one row per batch: fold a too-small tail into its neighbour
        if len(batches) > 1 and len(batches[-1]) < self.world_size:
            tail = batches.pop()  # before indexing: an assignment target is indexed after its right side
            batches[-1] = np.concatenate([batches[-1], tail])
        perm = rng.permutation(len(batches))
        return [batches[i] for i in perm]

    def __len__(self) -> int:
        return max(1, -(-self.num_rows // self.batch_size))

    def epoch(self, epoch: int) -> Iterator[Batch]:
        for rows in self.global_batches(epoch):
            yield self.collate(rows[self.rank::self.world_size], epoch)

    def collate(self, rows: np.ndarray, epoch: int = 0) -> Batch:
        """The batch of these rows; `epoch` keys Cloze's masks (other modes have no randomness)."""
        if isinstance(self.mode, Cloze):
            inputs, lengths, targets = self._cloze(np.asarray(rows, dtype=np.int64), epoch)
        elif self.mode == "seq2seq":
            seqs = [self.sequences[self.row_seq[r]][: self.row_end[r]] for r in rows]
            full, lengths = pad_sequences(seqs, "right")
            lengths = np.maximum(lengths - 1, 1)
            inputs, targets = full[:, :-1], full[:, 1:]
            if inputs.shape[1] > self.max_len:  # keep the most recent max_len positions
                inputs, targets = inputs[:, -self.max_len:], targets[:, -self.max_len:]
        else:
            prefixes = [self.sequences[self.row_seq[r]][: self.row_end[r]] for r in rows]
            inputs, lengths = pad_sequences(prefixes, "left", None)
            inputs = inputs[:, -self.max_len:]
            lengths = np.minimum(lengths, self.max_len)
            targets = np.array([[self.sequences[self.row_seq[r]][self.row_end[r]]] for r in rows], dtype=np.int64)
        weights = None
        if self.row_weights is not None:
            w = self.row_weights[self.row_seq[rows]].astype(np.float32)
            weights = torch.from_numpy(np.where(targets > 0, w[:, None], 0.0).astype(np.float32))
        fixed = None if self.row_fixed is None else torch.from_numpy(self.row_fixed[self.row_seq[rows]])
        preset = None if self.row_preset is None else torch.from_numpy(self.row_preset[self.row_seq[rows]])
        return Batch(torch.from_numpy(inputs), torch.from_numpy(lengths), torch.from_numpy(targets),
                     weights, torch.from_numpy(np.asarray(rows, dtype=np.int64)), fixed, preset)

    def _cloze(self, rows: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mode = self.mode
        items, lengths = pad_sequences([self.sequences[self.row_seq[r]][-self.max_len:] for r in rows], "right")
        pos = np.arange(items.shape[1])
        real = pos[None] < lengths[:, None]
        if mode.probe:
            masked = pos[None] == self.row_pos[rows][:, None]
        else:
            u = hash_uniforms(self.seed, epoch, rows, np.append(pos, _LAST_LANE))
            draw = np.where(real, u[:, :-1], 2.0)  # padding never masked
            masked = draw < mode.mask_prob
            none = ~masked.any(1)
            masked[none, draw[none].argmin(1)] = True
            only_last = u[:, -1] < mode.last_prob
            masked[only_last] = pos[None] == (lengths[only_last] - 1)[:, None]
        return np.where(masked, mode.mask_token, items), lengths, np.where(masked, items, 0)

    def target_positions(self, rows: np.ndarray, width: int) -> np.ndarray:
        """(len(rows), width): index of each batch position's target item in its row as this batcher
        holds it (the row's last max_len + 1 items)."""
        rows = np.asarray(rows)
        if self.mode == "last":  # one target per prefix, the item at index row_end
            return self.row_end[rows][:, None]
        if isinstance(self.mode, Cloze):  # position j holds item j of the row's last max_len
            skip = np.maximum(self.row_end[rows] - self.max_len, 0)
            return skip[:, None] + np.arange(width)[None]
        return np.broadcast_to(np.arange(1, width + 1), (len(rows), width))  # position j predicts item j + 1
