"""The stage graph: every artifact a run needs (mine, compose, train, pretrain, regenerate, graph) as one
`Stage` with its config slice and input stages, ids computed in one place (`stage_id`), one executor
(`execute`) for every kind, and the graph of each variant (`variant_graph`)."""
from dr4sr.stages.base import Runtime, Stage, StageGraph, stage_id
from dr4sr.stages.execute import execute
from dr4sr.stages.variants import variant_graph

__all__ = ["Runtime", "Stage", "StageGraph", "execute", "stage_id", "variant_graph"]
