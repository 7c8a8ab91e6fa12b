"""How pattern-like are the regenerated rows? Checks every generated row against its own source.

Usage: python benchmarks/regen_quality.py --dataset beauty --store artifacts --artifacts ID [ID ...]

For each `regenerate` artifact (its mine artifact and α are read from the manifests) it prints, over
the generated rows: the length histogram, the share holding an item outside the source (a
generative step), the share that is an ordered gapped subsequence of the source within α positions
(the shape of a mined pattern), the share of reversed rows (all items in the source, never in that
order), and the share equal to a mined pattern; then the same per memory k. Last, the generated
tokens from outside their source (generative steps): how many distinct items, the share of the 10
most frequent, and their median popularity rank in the training data (1 = most popular), which
shows whether generative steps find plausible items or collapse onto a few arbitrary ones.
"""
from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dr4sr.data.datasets import load_dataset
from dr4sr.data.splits import leave_one_out


def occurs_in_order(pattern: list[int], source: list[int], span: int | None) -> bool:
    """True when `pattern` is a subsequence of `source` whose occurrence spans <= span positions."""
    where = collections.defaultdict(list)
    for i, x in enumerate(source):
        where[x].append(i)

    def search(j: int, first: int, prev: int) -> bool:
        if j == len(pattern):
            return True
        for i in where.get(pattern[j], ()):
            if i > prev and (j == 0 or span is None or i - first <= span - 1):
                if search(j + 1, i if j == 0 else first, i):
                    return True
        return False

    return search(0, -1, -1)


def row_checks(pattern: list[int], source: list[int], alpha: int, mined: set) -> dict[str, bool]:
    inside = set(pattern) <= set(source)
    in_order = inside and occurs_in_order(pattern, source, None)
    return {"outside_item": not inside, "ordered_within_alpha": inside and occurs_in_order(pattern, source, alpha),
            "reversed": inside and not in_order, "mined_pattern": tuple(pattern) in mined}


def report(art: Path, store: Path, train: dict[int, list[int]]) -> str:
    manifest = json.loads((art / "manifest.json").read_text())
    mine = store / "mine" / manifest["inputs"]["mine"]
    alpha = int(json.loads((mine / "manifest.json").read_text())["config"]["alpha"])
    mined = set(map(tuple, pq.read_table(mine / "patterns.parquet").column("pattern").to_pylist()))
    rows = [r for r in pq.read_table(art / "dataset.parquet").to_pylist() if r["source"] == "generated"]
    total, by_k = collections.Counter(), collections.defaultdict(collections.Counter)
    lengths = collections.Counter(len(r["sequence"]) for r in rows)
    for r in rows:
        checks = row_checks(r["sequence"], train[r["user"]], alpha, mined)
        for counter in (total, by_k[r["k"]]):
            counter["rows"] += 1
            counter.update(k for k, v in checks.items() if v)

    def line(name: str, c: collections.Counter) -> str:
        n = max(c["rows"], 1)
        return (f"{name:<8} {c['rows']:>7,} rows | outside item {c['outside_item'] / n:6.1%} | ordered within "
                f"alpha {c['ordered_within_alpha'] / n:6.1%} | reversed {c['reversed'] / n:6.1%} | "
                f"= mined pattern {c['mined_pattern'] / n:6.1%}")

    out = [f"# regenerate {art.name}: config {json.dumps(manifest['config'], sort_keys=True)}, "
           f"pretrain {manifest['inputs']['pretrain']}, alpha {alpha}",
           "lengths " + ", ".join(f"{k}: {v:,}" for k, v in sorted(lengths.items())), line("all", total)]
    out += [line(f"k={k}", by_k[k]) for k in sorted(by_k)]
    out.append(generative_tokens(rows, train))
    return "\n".join(out)


def generative_tokens(rows: list[dict], train: dict[int, list[int]]) -> str:
    popularity = collections.Counter(x for seq in train.values() for x in seq)
    rank = {item: i + 1 for i, (item, _) in enumerate(popularity.most_common())}
    outside = collections.Counter()
    for r in rows:
        source = set(train[r["user"]])
        outside.update(x for x in r["sequence"] if x not in source)
    n = sum(outside.values())
    if n == 0:
        return "generative tokens: none"
    top10 = sum(v for _, v in outside.most_common(10)) / n
    median_rank = float(np.median([rank.get(x, len(rank) + 1) for x in outside.elements()]))
    return (f"generative tokens {n:,}: {len(outside):,} distinct items, top-10 share {top10:.1%}, "
            f"median popularity rank {median_rank:,.0f} of {len(rank):,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--store", default="artifacts")
    ap.add_argument("--artifacts", nargs="+", required=True, help="regenerate artifact ids")
    args = ap.parse_args()
    splits = leave_one_out(load_dataset(args.dataset, args.data_dir))
    train = {int(u): np.asarray(s).tolist() for u, s in zip(splits.users, splits.train)}
    store = Path(args.store)
    for a in args.artifacts:
        print(report(store / "regenerate" / a, store, train), flush=True)


if __name__ == "__main__":
    main()
