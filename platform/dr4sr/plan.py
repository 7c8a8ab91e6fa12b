"""What a multi-stage command will do, before it does it: the stages of its graph (dr4sr.stages), each
artifact's id, whether it is cached (or a killed build will be resumed), and a rough cost from earlier
builds on the same data. The plan reads the graph the executor runs, so "cached" means reused.
"""
from __future__ import annotations

import dataclasses
import json
import statistics

from dr4sr.artifacts import ArtifactStore
from dr4sr.stages import StageGraph, stage_id
from dr4sr.stages.execute import Events
from dr4sr.train.progress import StageClock, fmt_seconds
from dr4sr.train.worker import CHECKPOINT_NAME


@dataclasses.dataclass
class PlannedStage:
    label: str  # what the user reads: "pretrain regenerator"
    stage: str  # store stage: mine | compose | train | pretrain | regenerate | graph
    id: str | None  # None only for a stage whose id hashes rows not composed yet (see dr4sr.stages.kinds)
    state: str = "run"  # cached | resume | run
    estimate: str = ""
    nodes: list = dataclasses.field(default_factory=list)  # the graph stages it stands for


def plan_graphs(graphs: list[StageGraph], store: ArtifactStore, fingerprint: str) -> list[PlannedStage]:
    """One entry per artifact of all `graphs` in execution order (merged by id: e.g. the backbone run is
    also the regenerator's SASRec init), with its state."""
    out: list[PlannedStage] = []
    by_id: dict[tuple, PlannedStage] = {}
    for node in (node for graph in graphs for node in graph.order()):
        aid, key = stage_id(node, store), merge_key(node, store)
        if key in by_id:
            by_id[key].nodes.append(node)
            continue
        p = by_id[key] = PlannedStage(node.label, node.kind, aid, nodes=[node])
        if aid is not None and store.get(node.kind, aid) is not None:
            p.state = "cached"
        else:
            if aid is not None and (store.staging_path(node.kind, aid) / "checkpoints" / CHECKPOINT_NAME).exists():
                p.state = "resume"
            p.estimate = estimate(store, node.kind, fingerprint, p.label)
        out.append(p)
    return out


def merge_key(node, store: ArtifactStore) -> tuple:
    """What makes two graphs' stages one artifact: the id, or for a stage whose id is not known yet, its
    kind, config slice and its inputs' merge keys."""
    aid = stage_id(node, store)
    if aid is not None:
        return node.kind, aid
    inputs = tuple(sorted((name, merge_key(dep, store)) for name, dep in node.inputs.items()))
    return node.kind, json.dumps(node.key(), sort_keys=True, default=str), inputs


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


def format_plan(title: str, plan: list[PlannedStage], store: ArtifactStore, ids: bool = False) -> str:
    """One line per stage; with `ids` (a dry run) each line names its artifact (kind/id)."""
    cached = sum(p.state == "cached" for p in plan)
    lines = [f"plan: {title}: {len(plan)} stage(s), {cached} cached (store {store.root})"]
    for i, p in enumerate(plan, 1):
        state = {"cached": "cached", "resume": "resumes its killed run", "run": "to run"}[p.state]
        where = f"{p.stage}/{p.id or '(id known once the init rows are composed)'}  " if ids else ""
        lines.append(f"  [{i}/{len(plan)}] {p.label:32} {where}{state}{'; ' + p.estimate if p.estimate else ''}")
    return "\n".join(lines)


def watch(plan: list[PlannedStage], log) -> Events:
    """The executor's events callback: a line when each planned stage starts and ends."""
    clock = StageClock(len(plan), log)

    def events(event: str, node, aid: str) -> None:
        found = next(((i, p) for i, p in enumerate(plan, 1) if (p.stage, p.id) == (node.kind, aid)
                      or any(n is node for n in p.nodes)), None)
        if found is None or event == "cached":
            return  # the plan said so, or it was built by an earlier run of the same command
        i, p = found
        p.id = aid  # an id the plan could not know yet
        if event == "start":
            clock.start(i, p.label, "resuming its checkpoint" if p.state == "resume" else p.estimate)
        else:
            clock.finish(i, p.label, "done" if event == "done" else "built by another process, reused")

    return events
