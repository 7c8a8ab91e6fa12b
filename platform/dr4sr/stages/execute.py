"""Run a stage graph against the artifact store: every stage, whatever its kind, is looked up, claimed,
built in its staging folder (resumed when a killed build left checkpoints there) and committed with its
manifest by the store (dr4sr.artifacts), in dependency order."""
from __future__ import annotations

from typing import Callable

from dr4sr.artifacts import Artifact, ArtifactStore, artifact_id
from dr4sr.stages.base import Stage, StageGraph, stage_inputs

# (event, stage, artifact id): "cached" | "start" | "done" | "waited" (built meanwhile by another process)
Events = Callable[[str, Stage, str], None]


def execute(graph: StageGraph, store: ArtifactStore, events: Events | None = None,
            log: Callable[[str], None] = print) -> dict[Stage, Artifact]:
    """Every stage's artifact (reused when the store has it), keyed by stage."""
    built: dict[Stage, Artifact] = {}
    for stage in graph.order():
        inputs = stage_inputs(stage, store)  # known now: every input is built
        aid = artifact_id(stage.kind, stage.key(), inputs)
        arts = {name: built[dep] for name, dep in stage.inputs.items()}

        def notify(event: str, stage: Stage = stage, aid: str = aid) -> None:
            if event == "cached":
                log(f"reusing {stage.label}: {store.root / stage.kind / aid}")
            if events is not None:
                events(event, stage, aid)

        built[stage] = store.get_or_create(stage.kind, stage.key(), inputs,
                                           lambda w, stage=stage, arts=arts: stage.build(arts, w),
                                           resumable=stage.resumable, log=log, notify=notify)
    return built
