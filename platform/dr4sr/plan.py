"""What a multi-stage command will do, before it does it: each stage's artifact id, whether it is cached
(or a killed build will be resumed), and a rough cost from earlier builds on the same data.

Ids are computed with the same helpers the stages use, so "cached" here means the stage will be reused.
"""
from __future__ import annotations

import dataclasses
import json
import statistics

from dr4sr.artifacts import ArtifactStore, artifact_id
from dr4sr.train.progress import StageClock, fmt_seconds
from dr4sr.train.worker import CHECKPOINT_NAME


@dataclasses.dataclass
class PlannedStage:
    label: str  # what the user reads: "pretrain regenerator"
    stage: str  # store stage: mine | train | pretrain | regenerate
    id: str
    state: str = "run"  # cached | resume | run
    estimate: str = ""


def target_stage(cfg, splits, data_id: str) -> tuple[str, str, str]:
    from dr4sr.train.runner import train_inputs, train_key

    return f"train {cfg.backbone}", "train", artifact_id("train", train_key(cfg), train_inputs(splits, data_id))


def variant_stages(variant: str, splits, cfg, rcfg, store: ArtifactStore) -> list[tuple[str, str, str | None]]:
    """(label, stage, id) in execution order. An id that hashes rows an unfinished stage will make is None:
    such a stage is to run (the target model's rows, and the init's when it trains on mined patterns)."""
    if variant == "backbone":
        return [target_stage(cfg, splits, "original")]
    from dr4sr.mining.stage import MineConfig, mine_artifact_id

    mine_id = mine_artifact_id(splits, MineConfig.from_dict(dict(rcfg.mine)))
    stages: list = [("mine patterns", "mine", mine_id)]
    target = (f"train {cfg.backbone}", "train", None)
    if variant == "pattern":
        return stages + [target]
    from dr4sr.regen.stage import (
        init_rows,
        init_run_config,
        pretrain_inputs,
        pretrain_key,
        regenerate_inputs,
        regenerate_key,
    )
    from dr4sr.train.runner import train_inputs, train_key

    init_id, pre_id, regen_id = None, None, None
    if rcfg.init.mode != "scratch":
        mine = store.get("mine", mine_id)
        if rcfg.init.data == "original" or mine is not None:
            data_id = "original" if rcfg.init.data == "original" else init_rows(splits, rcfg, mine)[1]
            init_id = artifact_id("train", train_key(init_run_config(rcfg)), train_inputs(splits, data_id))
        stages.append(("train sasrec (regenerator init)", "train", init_id))
    if rcfg.init.mode == "scratch" or init_id is not None:
        pre_id = artifact_id("pretrain", pretrain_key(rcfg), pretrain_inputs(splits, mine_id, init_id))
        regen_id = artifact_id("regenerate", regenerate_key(rcfg), regenerate_inputs(splits, pre_id, mine_id))
    return stages + [("pretrain regenerator", "pretrain", pre_id), ("regenerate dataset", "regenerate", regen_id),
                     target]


def plan_stages(store: ArtifactStore, stages: list, fingerprint: str) -> list[PlannedStage]:
    return merge_plans([[PlannedStage(label, stage, aid) for label, stage, aid in stages]], store, fingerprint)


def merge_plans(plans: list[list[PlannedStage]], store: ArtifactStore, fingerprint: str) -> list[PlannedStage]:
    """One entry per artifact (e.g. the backbone run is also the regenerator's SASRec init), states filled in."""
    out, seen = [], set()
    for p in (p for plan in plans for p in plan):
        if p.id is not None and (p.stage, p.id) in seen:
            continue
        seen.add((p.stage, p.id))
        if p.id is not None and store.get(p.stage, p.id) is not None:
            p.state, p.estimate = "cached", ""
        else:
            if p.id is not None and (store.staging_path(p.stage, p.id) / "checkpoints" / CHECKPOINT_NAME).exists():
                p.state = "resume"
            p.estimate = estimate(store, p.stage, fingerprint, p.label)
        out.append(p)
    return out


def estimate(store: ArtifactStore, stage: str, fingerprint: str, label: str) -> str:
    """Median build time of this stage's earlier artifacts on the same splits (same backbone for train)."""
    seconds = []
    for manifest in (store.root / stage).glob("*/manifest.json"):
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if m.get("inputs", {}).get("splits") != fingerprint:
            continue
        if stage == "train" and f"train {m.get('config', {}).get('backbone')}" not in label:
            continue
        seconds.append(float(m.get("seconds", 0.0)))
    if not seconds:
        return "no earlier build on this data to time it by"
    return f"~{fmt_seconds(statistics.median(seconds))}, the median of {len(seconds)} earlier build(s) on this data"


def format_plan(title: str, plan: list[PlannedStage], store: ArtifactStore) -> str:
    cached = sum(p.state == "cached" for p in plan)
    lines = [f"plan: {title}: {len(plan)} stage(s), {cached} cached (store {store.root})"]
    for i, p in enumerate(plan, 1):
        state = {"cached": "cached", "resume": "resumes its killed run", "run": "to run"}[p.state]
        lines.append(f"  [{i}/{len(plan)}] {p.label:32} {state}{'; ' + p.estimate if p.estimate else ''}")
    return "\n".join(lines)


def watch(store: ArtifactStore, plan: list[PlannedStage], log) -> StageClock:
    """Print a line when each planned stage starts and ends (the store tells when it builds an artifact)."""
    clock = StageClock(len(plan), log)

    def observe(event: str, stage: str, aid: str) -> None:
        found = next(((i, p) for i, p in enumerate(plan, 1) if (p.stage, p.id) == (stage, aid)), None)
        if found is None and event == "start":  # a stage whose id the plan could not know yet
            found = next(((i, p) for i, p in enumerate(plan, 1) if p.stage == stage and p.id is None), None)
            if found is not None:
                found[1].id = aid
        if found is None:
            return  # an artifact outside the plan, e.g. GCE-GNN's graph
        i, p = found
        if event == "start":
            clock.start(i, p.label, "resuming its checkpoint" if p.state == "resume" else p.estimate)
        else:
            clock.finish(i, p.label, "done" if event == "done" else "built by another process, reused")

    store.observer = observe
    return clock
