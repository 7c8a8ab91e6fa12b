"""Every kind of stage: mine, compose, train (target model or regenerator init), pretrain, regenerate,
graph. Each names its config slice and inputs; `dr4sr.stages.base.stage_id` hashes them.

Ids kept from before the stage graph: mine, pretrain, regenerate, a train on the original rows, a graph
of the original sequences, the regenerator's init on pattern rows and, with such an init, the `pattern`
target (these two hash the rows' content, so they resolve once the rows are composed). Any other train
on composed rows hashes its compose stage's id (COMPOSED_TRAIN_FORMAT marks the change from hashing rows).
"""
from __future__ import annotations

import dataclasses

from dr4sr.data.graph import GraphSpec
from dr4sr.data.sequences import rows_fingerprint
from dr4sr.data.splits import Splits
from dr4sr.mining.stage import MineConfig, mine_into
from dr4sr.regen.compose import ComposeConfig, read_rows, write_rows
from dr4sr.regen.config import RegenPipelineConfig
from dr4sr.regen.stage import pretrain_into, pretrain_key, regenerate_into, regenerate_key
from dr4sr.stages.base import Runtime
from dr4sr.train.config import RunConfig
from dr4sr.train.graph import read_graph, write_graph
from dr4sr.train.runner import train_into, train_key

# 2: a train artifact on composed rows hashes the compose artifact's id, not the rows (1: rows' content)
COMPOSED_TRAIN_FORMAT = 2
PATTERN_ROWS = "mined+original"  # `--variant pattern`'s rows, and the init's with init.data=pattern


@dataclasses.dataclass(eq=False)
class MineStage:
    splits: Splits
    cfg: MineConfig
    runtime: Runtime
    engine: str = "native"
    kind = "mine"
    label = "mine patterns"
    resumable = False

    @property
    def inputs(self) -> dict:
        return {}

    def key(self) -> dict:
        return dataclasses.asdict(self.cfg)

    def id_inputs(self, ids, store) -> dict:
        return {"splits": self.splits.fingerprint}

    def build(self, inputs, writer) -> None:
        workers = self.runtime.workers if self.runtime.workers > 1 else None
        mine_into(writer, self.splits, self.cfg, workers, self.engine)


@dataclasses.dataclass(eq=False)
class ComposeStage:
    """The rows a model trains on: the sources of `composition` (original, mined, generated), each row
    labelled with its source, composed per `compose` (regen/compose.py)."""
    splits: Splits
    composition: str  # a regen.compose.COMPOSITIONS name, or PATTERN_ROWS
    compose: ComposeConfig
    mine: MineStage
    regenerate: "RegenerateStage | None" = None
    kind = "compose"
    label = "compose training rows"
    resumable = False

    @property
    def inputs(self) -> dict:
        return {"mine": self.mine} | ({"regenerate": self.regenerate} if self.regenerate else {})

    def key(self) -> dict:
        return {"composition": self.composition, **dataclasses.asdict(self.compose)}

    def id_inputs(self, ids, store) -> dict:
        return {"splits": self.splits.fingerprint, **ids}

    def build(self, inputs, writer) -> None:
        from dr4sr.regen.compose import composition_rows, read_dataset, regenerated_parts

        regen = inputs.get("regenerate")
        parts = regenerated_parts(self.splits.train, inputs["mine"].path,
                                  read_dataset(regen.path) if regen else None, self.compose.mined)
        rows = composition_rows(self.composition, parts, self.compose.dedupe)
        write_rows(writer.dir / "rows.parquet", rows)
        # the rows' content id, as train artifacts hashed it before compose artifacts existed
        label = self.composition if regen is None else f"{self.composition}:{regen.id}"
        writer.info.update({"rows": rows.counts(), "num_rows": len(rows), "data_id": rows.data_id(label)})


@dataclasses.dataclass(eq=False)
class GraphStage:
    """GCE-GNN's item graph, from the original sequences or (graph_source=training) the training rows."""
    splits: Splits
    spec: GraphSpec
    data: ComposeStage | None = None  # the training rows when spec.source == "training"
    kind = "graph"
    label = "build item graph"
    resumable = False

    @property
    def inputs(self) -> dict:
        return {"data": self.data} if self.data is not None and self.spec.source == "training" else {}

    def key(self) -> dict:
        return self.spec.key(self.splits.num_items)

    def id_inputs(self, ids, store) -> dict:
        inputs = {"splits": self.splits.fingerprint}
        if self.spec.source == "training":
            inputs["rows"] = f"compose:{ids['data']}" if "data" in ids else rows_fingerprint(self.splits.train)
        return inputs

    def build(self, inputs, writer) -> None:
        from dr4sr.data.graph import build_item_graph

        data = inputs.get("data")
        seqs = read_rows(data.path).rows if data is not None else self.splits.train
        write_graph(writer, build_item_graph(self.spec, seqs, self.splits.num_items), self.splits.num_items)


@dataclasses.dataclass(eq=False)
class TrainStage:
    """A model trained on the original rows (data None) or on a compose stage's rows."""
    cfg: RunConfig
    splits: Splits
    runtime: Runtime
    data: ComposeStage | None = None
    graph: GraphStage | None = None
    label: str = ""
    target: bool = True  # the run's own model (gets runtime.on_epoch), else the regenerator's init
    content_id: bool = False  # id hashes the rows' content (an id that predates compose): see variants.py
    kind = "train"
    resumable = True

    def __post_init__(self):
        self.label = self.label or f"train {self.cfg.backbone}"

    @property
    def inputs(self) -> dict:
        return {k: v for k, v in (("data", self.data), ("graph", self.graph)) if v is not None}

    def key(self) -> dict:
        return train_key(self.cfg)

    def id_inputs(self, ids, store) -> dict | None:
        inputs = {"splits": self.splits.fingerprint, "sequences": "original"}
        if self.data is None:
            return inputs
        if not self.content_id:
            return {**inputs, "sequences": f"compose:{ids['data']}", "format": COMPOSED_TRAIN_FORMAT}
        found = store.get("compose", ids["data"]) if store is not None else None
        return None if found is None else {**inputs, "sequences": found.manifest["data_id"]}

    def build(self, inputs, writer) -> None:
        rows = read_rows(inputs["data"].path) if "data" in inputs else None
        graph = read_graph(inputs["graph"].path) if "graph" in inputs else None
        rt = self.runtime
        rt.log(f"{self.label}: " + (f"{len(rows):,} rows {rows.counts()}" if rows
                                    else f"the {len(self.splits.train):,} original rows"))
        train_into(writer, self.cfg, self.splits, rows.rows if rows else None, rows.sources if rows else None,
                   graph, rt.workers, rt.gpus, rt.log, rt.on_epoch if self.target else None)


@dataclasses.dataclass(eq=False)
class PretrainStage:
    splits: Splits
    cfg: RegenPipelineConfig
    runtime: Runtime
    mine: MineStage
    init: TrainStage | None = None  # None: init.mode = scratch
    kind = "pretrain"
    label = "pretrain regenerator"
    resumable = True

    @property
    def inputs(self) -> dict:
        return {"mine": self.mine} | ({"init": self.init} if self.init is not None else {})

    def key(self) -> dict:
        return pretrain_key(self.cfg)

    def id_inputs(self, ids, store) -> dict:
        return {"splits": self.splits.fingerprint, "mine": ids["mine"], "init": ids.get("init", "scratch")}

    def build(self, inputs, writer) -> None:
        init = inputs.get("init")
        rt = self.runtime
        pretrain_into(writer, self.splits, self.cfg, inputs["mine"].path, init.path if init else None,
                      rt.workers, rt.gpus, rt.log)


@dataclasses.dataclass(eq=False)
class RegenerateStage:
    splits: Splits
    cfg: RegenPipelineConfig
    runtime: Runtime
    pretrain: PretrainStage
    mine: MineStage
    kind = "regenerate"
    label = "regenerate dataset"
    resumable = False

    @property
    def inputs(self) -> dict:
        return {"pretrain": self.pretrain, "mine": self.mine}

    def key(self) -> dict:
        return regenerate_key(self.cfg)

    def id_inputs(self, ids, store) -> dict:
        return {"splits": self.splits.fingerprint, "pretrain": ids["pretrain"], "mine": ids["mine"]}

    def build(self, inputs, writer) -> None:
        regenerate_into(writer, self.splits, self.cfg, inputs["pretrain"].path, inputs["mine"].path,
                        self.runtime.workers, self.runtime.log)
