"""What a target model trains on: original sequences, mined patterns and regenerated rows, composed
per `compose` config and labelled per row with their source.

The labels feed metrics ("rows by source") and DR4SR+ (mined rows keep weight 1). Two choices the
authors' numbers depended on (docs/RECIPE_FACTS.md, "What produced the paper's DR4SR numbers") are explicit:
- `compose.mined`: "paired" = the patterns drawn into pre-training pairs (each once), or "all" = every
  mined pattern once (the authors' training file: all 40,664 on Beauty instead of ~23.5k paired);
- `compose.dedupe`: "across" = each distinct sequence once over all sources (a row present in several
  sources keeps the first source's label, in the order original, mined, generated), or "none" = the
  sources concatenated as the authors did (mined and generated rows are distinct within their source).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dr4sr.data.sequences import rows_fingerprint
from dr4sr.errors import ConfigError, DR4SRError

SOURCES = ("original", "mined", "generated")
# composition name -> sources it holds, in labelling order
COMPOSITIONS = {
    "regenerated": ("generated",),
    "regenerated+mined": ("mined", "generated"),
    "regenerated+mined+original": ("original", "mined", "generated"),
    "original": ("original",),
}
# every row set a stage composes: the compositions above and `--variant pattern`'s (no regenerator)
ROW_SETS = {**COMPOSITIONS, "mined+original": ("original", "mined")}


@dataclasses.dataclass
class ComposeConfig:
    # defaults "all" / "none": on SASRec Beauty they beat "paired" / "across" on both seeds
    # (N@20 0.0424 / 0.0439 against 0.0405 / 0.0368, benchmarks/results/dr4sr_beauty.txt)
    mined: str = "all"  # "paired" (patterns drawn into pre-training pairs) | "all" (every mined pattern)
    dedupe: str = "none"  # "across" (each distinct sequence once over all sources) | "none" (concatenated)

    def validate(self) -> None:
        if self.mined not in ("paired", "all"):
            raise ConfigError(f"compose.mined must be 'paired' or 'all', got {self.mined!r}")
        if self.dedupe not in ("across", "none"):
            raise ConfigError(f"compose.dedupe must be 'across' or 'none', got {self.dedupe!r}")


@dataclasses.dataclass
class TrainingRows:
    rows: list[np.ndarray]
    sources: np.ndarray  # source name per row (object array)

    def __len__(self) -> int:
        return len(self.rows)

    def counts(self) -> dict[str, int]:
        return {s: int(np.sum(self.sources == s)) for s in SOURCES if np.any(self.sources == s)}

    def data_id(self, label: str) -> str:
        """Identifies these rows in a train artifact id: what they are and a hash of their content."""
        return f"{label}:{rows_fingerprint(self.rows)}"


def original_rows(train: list[np.ndarray]) -> TrainingRows:
    return TrainingRows(list(train), np.full(len(train), "original", dtype=object))


def load_mined(mine_path: str | Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(patterns, pair user ids, pair pattern ids) from a mine artifact directory."""
    from dr4sr.mining.stage import read_patterns

    path = Path(mine_path)
    for name in ("patterns.parquet", "pairs.parquet"):
        if not (path / name).exists():
            raise DR4SRError(f"{path}: not a mine artifact (missing {name})")
    ps = read_patterns(path / "patterns.parquet")
    patterns = [ps.values[ps.offsets[i]:ps.offsets[i + 1]] for i in range(len(ps))]
    pairs = pq.read_table(path / "pairs.parquet")
    return (patterns, pairs.column("user").to_numpy().astype(np.int64),
            pairs.column("pattern_id").to_numpy().astype(np.int64))


def mined_patterns(mine_path: str | Path, which: str) -> list[np.ndarray]:
    """Mined patterns as training rows, each once: the paired ones (in first-pair order) or all."""
    patterns, _, pair_pattern = load_mined(mine_path)
    if which == "all":
        return [np.asarray(p, dtype=np.int64) for p in patterns]
    if which != "paired":
        raise ConfigError(f"compose.mined must be 'paired' or 'all', got {which!r}")
    return [np.asarray(patterns[i], dtype=np.int64) for i in pd.unique(pair_pattern)]


def compose(parts: dict[str, list[np.ndarray]], dedupe: str) -> TrainingRows:
    """Concatenate `parts` (source -> rows, in order); with dedupe="across" keep each distinct row once."""
    rows, sources, seen = [], [], set()
    for source, seqs in parts.items():
        for s in seqs:
            if dedupe == "across":
                key = np.asarray(s, dtype=np.int64).tobytes()
                if not len(s) or key in seen:
                    continue
                seen.add(key)
            rows.append(s)
            sources.append(source)
    return TrainingRows(rows, np.asarray(sources, dtype=object))


def source_rows(table: pa.Table, source: str) -> list[np.ndarray]:
    """Rows of one source in a regenerate artifact's `dataset.parquet`."""
    from dr4sr.regen.regenerate import list_column

    seqs = list_column(table, "sequence")
    return [seqs[i] for i in np.flatnonzero(table.column("source").to_numpy(zero_copy_only=False) == source)]


def read_dataset(artifact_path: str | Path) -> pa.Table:
    path = Path(artifact_path) / "dataset.parquet"
    if not path.exists():
        raise DR4SRError(f"{path.parent}: not a regenerate artifact (missing {path.name})")
    return pq.read_table(path)


def composition_rows(composition: str, available: dict[str, list[np.ndarray]], dedupe: str) -> TrainingRows:
    """A composition (see COMPOSITIONS) of the rows `available` by source."""
    if composition not in ROW_SETS:
        raise ConfigError(f"unknown composition {composition!r}; expected one of {tuple(COMPOSITIONS)}")
    if composition == "original":
        return original_rows(available["original"])  # the users' sequences as they are
    return compose({s: available[s] for s in ROW_SETS[composition]}, dedupe)


def regenerated_parts(original: list[np.ndarray], mine_path: str | Path, dataset: pa.Table | None,
                      mined: str) -> dict[str, list[np.ndarray]]:
    """The sources a composition draws from: the original rows, the mine artifact's patterns
    (`compose.mined`) and the regenerate artifact's generated rows (none without a regenerator). (The
    artifact's own "mined" rows are the paired patterns whatever `compose.mined` says: they are not read.)"""
    parts = {"original": list(original), "mined": mined_patterns(mine_path, mined)}
    if dataset is not None:
        parts["generated"] = source_rows(dataset, "generated")
    return parts


def write_rows(path: Path, rows: TrainingRows) -> None:
    """A `compose` artifact's rows.parquet: one training row per line, with its source."""
    pq.write_table(pa.table({"sequence": list_array(rows.rows),
                             "source": pa.array(list(rows.sources), pa.string())}), path)


def list_array(seqs: list[np.ndarray]) -> pa.LargeListArray:
    """Item sequences as one large_list<int64> column."""
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    values = np.concatenate(seqs).astype(np.int64) if seqs else np.zeros(0, dtype=np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int64()))


def read_rows(artifact_path: str | Path) -> TrainingRows:
    """The rows of a `compose` artifact."""
    from dr4sr.regen.regenerate import list_column

    path = Path(artifact_path) / "rows.parquet"
    if not path.exists():
        raise DR4SRError(f"{path.parent}: not a compose artifact (missing {path.name})")
    table = pq.read_table(path)
    return TrainingRows(list_column(table, "sequence"),
                        np.asarray(table.column("source").to_pylist(), dtype=object))


def regenerated_rows(composition: str, cfg: ComposeConfig, original: list[np.ndarray], mine_path: str | Path,
                     dataset: pa.Table) -> TrainingRows:
    """The rows a target model trains on for `composition` of a regenerate artifact under `cfg`: what
    `dr4sr run` trains on, what stats.json and `dr4sr regenerate` describe."""
    return composition_rows(composition, regenerated_parts(original, mine_path, dataset, cfg.mined), cfg.dedupe)
