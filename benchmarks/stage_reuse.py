"""How much a study's shared artifact store saved: stage runs done vs. one store per trial.

    python benchmarks/stage_reuse.py STUDY_DIR STORE

Each finished trial's data artifact (regenerate or mine, from its metrics.json) and everything it was
built from (pretrain, mine, the SASRec init: the manifests' inputs) count as used by that trial. Without
reuse each trial would build all of them itself, so the saving is sum over artifacts of
(trials using it - 1) x the seconds it took. Only finished trials name their artifacts, so trials that
ASHA stopped are not counted (the saving is a lower bound).
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def stage_seconds(man: dict) -> float:
    """Mining and decoding run before their artifact is opened, so the manifest's own `seconds` misses them."""
    return man["seconds"] + sum(man.get("timings", {}).values()) + man.get("decode_seconds", 0.0)


def main(study: str, store: str) -> int:
    manifests = {p.parent.name: json.loads(p.read_text()) for p in Path(store).glob("*/*/manifest.json")}

    def closure(aid: str) -> set[str]:
        ids = {aid}
        for dep in manifests[aid].get("inputs", {}).values():
            if dep in manifests:
                ids |= closure(dep)
        return ids

    trials = [json.loads(p.read_text()) for p in Path(study).glob("trials/*/run/metrics.json")]
    uses: Counter = Counter()
    for m in trials:
        aid = m.get("regenerate_artifact") or m.get("mine_artifact")
        if aid in manifests:
            uses.update(closure(aid))
    print(f"{len(trials)} finished trials; shared stage artifacts:")
    for aid, n in sorted(uses.items(), key=lambda kv: manifests[kv[0]]["stage"]):
        print(f"  {manifests[aid]['stage']:<10} {aid}  {stage_seconds(manifests[aid]):8.1f} s  used by {n} trial(s)")
    runs_saved = sum(n - 1 for n in uses.values())
    seconds_saved = sum((n - 1) * stage_seconds(manifests[a]) for a, n in uses.items())
    print(f"stage runs: {len(uses)} done, {runs_saved} saved by reuse (~{seconds_saved / 60:.1f} min of stage time)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
