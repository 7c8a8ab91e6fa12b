"""The stage protocol, the graph of a run, and the one place an artifact id is computed.

A stage is one content-addressed artifact of the store: a kind (the store's stage folder), the slice of
configuration that changes its result (`key`), its input stages by name, and `build(inputs, writer)`,
which writes the artifact into the writer's staging folder from its inputs' finished artifacts. Its id
hashes (kind, key, the inputs' ids); `stage_id` computes it for every kind, so a plan knows every id
before anything runs.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

from dr4sr.artifacts import Artifact, ArtifactStore, ArtifactWriter, artifact_id

Log = Callable[[str], None]


@dataclasses.dataclass
class Runtime:
    """How the stages of one graph run (never part of an id): workers, GPUs, where lines go, and the
    target's per-epoch callback (a Tune trial reports through it)."""
    workers: int = 1
    gpus: bool = False
    log: Log = print
    on_epoch: Callable | None = None


class Stage(Protocol):
    kind: str  # the store's stage folder: mine | train | pretrain | regenerate | compose | graph
    label: str  # what a plan prints: "pretrain regenerator"
    inputs: dict[str, "Stage"]
    resumable: bool  # a killed build leaves checkpoints in its staging folder for the next one

    def key(self) -> dict:
        """The configuration slice that changes this artifact."""

    def id_inputs(self, ids: dict[str, str], store: ArtifactStore | None) -> dict | None:
        """The artifact's inputs, given its input stages' ids (None: not known before an input is built)."""

    def build(self, inputs: dict[str, Artifact], writer: ArtifactWriter) -> None:
        """Write the artifact into `writer.dir` from the finished artifacts of its inputs."""


def stage_inputs(stage: Stage, store: ArtifactStore | None = None) -> dict | None:
    ids = {}
    for name, dep in stage.inputs.items():
        aid = stage_id(dep, store)
        if aid is None:
            return None
        ids[name] = aid
    return stage.id_inputs(ids, store)


def stage_id(stage: Stage, store: ArtifactStore | None = None) -> str | None:
    """The artifact id of `stage`: its kind, config slice and its inputs' ids, hashed by artifact_id."""
    inputs = stage_inputs(stage, store)
    return None if inputs is None else artifact_id(stage.kind, stage.key(), inputs)


@dataclasses.dataclass
class StageGraph:
    """The stages one run needs, ending in `target` (the model the user asked for)."""
    target: Stage

    def order(self) -> list[Stage]:
        """Every stage once (by identity), each after its inputs."""
        out: list[Stage] = []

        def visit(stage: Stage) -> None:
            if any(s is stage for s in out):
                return
            for dep in stage.inputs.values():
                visit(dep)
            out.append(stage)

        visit(self.target)
        return out

    def find(self, kind: str) -> Stage | None:
        """The last stage of `kind` before (or being) the target, e.g. the rows it trains on."""
        return next((s for s in reversed(self.order()) if s.kind == kind), None)
