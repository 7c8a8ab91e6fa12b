"""Artifact ids pinned as literals for the tiny chain dataset at smoke size: users and running grids hold
artifacts under these ids, so a refactor that changes one would silently retrain (or orphan) them.

The values were computed once by the code that first wrote such artifacts (before the stage graph for
mine, init, pretrain, regenerate, the backbone train and the graph); change one only together with a
format version bump and a note in README.md ("Artifact format").
"""
from __future__ import annotations

import pytest

from dr4sr.pipeline import RunRequest, prepare_run
from dr4sr.stages import StageGraph, execute, stage_id

MINE = "1afcdfa4b27fa7e5"
BACKBONE = "df01dbf2356d33ce"  # sasrec on the original rows, also the default regenerator init
DEFAULT = {"pretrain": "88360ccaee2692f6", "regenerate": "a1190eeb34eef093"}
NO_DIVERSITY = {"pretrain": "3fdecbd9897d376c", "regenerate": "6199e9387a98e532"}
# paper-era: the init trains on pattern rows, and its id hashes those rows' content (as before compose
# artifacts); the paper-era `pattern` target is that same model and keeps this id
PAPER_INIT = "8600f90ae362b880"
PAPER = {"pretrain": "1d536b284e5d2804", "regenerate": "9a48ded8793d0c31"}
GCEGNN_GRAPH = "ab1b9399cec38a9f"
GCEGNN_TRAIN = "6e396767e27c9f4f"
# targets on composed rows hash their compose artifact (train format 2 of composed data)
COMPOSE = {"pattern": "851c8bb9085660f8", "dr4sr": "a910e40fcf99e8fc", "dr4sr-no-diversity": "e6195b8493b5ff62"}
TARGET = {"pattern": "44978babd8ca29d9", "dr4sr": "a8adcd5c5c2f87f1", "dr4sr-no-diversity": "fa7e1fc6c7b715cc",
          "dr4sr+": "b827284f25051c27", "gcegnn dr4sr": "ecd64e7da5a621df"}


def prepared(tiny_dataset, tmp_path, variant, preset=None, backbone="sasrec", seed=None):
    req = RunRequest(str(tiny_dataset), backbone=backbone, variant=variant, smoke_test=True,
                     store_root=str(tmp_path / "store"), preset=preset,
                     overrides={} if seed is None else {"train": {"seed": seed}})
    return prepare_run(req, tmp_path / "out")


def ids(tiny_dataset, tmp_path, variant, preset=None, backbone="sasrec") -> list[tuple[str, str]]:
    """(kind, id) of every stage in execution order, from configuration alone (nothing is built)."""
    run = prepared(tiny_dataset, tmp_path, variant, preset, backbone)
    return [(s.kind, stage_id(s, run.store)) for s in run.graph.order()]


def test_backbone_targets(tiny_dataset, tmp_path):
    assert ids(tiny_dataset, tmp_path, "backbone") == [("train", BACKBONE)]
    assert ids(tiny_dataset, tmp_path, "backbone", backbone="gcegnn") == [("graph", GCEGNN_GRAPH),
                                                                          ("train", GCEGNN_TRAIN)]


def test_pattern(tiny_dataset, tmp_path):
    assert ids(tiny_dataset, tmp_path, "pattern") == [("mine", MINE), ("compose", COMPOSE["pattern"]),
                                                      ("train", TARGET["pattern"])]


@pytest.mark.parametrize("variant, chain", [("dr4sr", DEFAULT), ("dr4sr-no-diversity", NO_DIVERSITY)])
def test_regeneration_chains(tiny_dataset, tmp_path, variant, chain):
    assert ids(tiny_dataset, tmp_path, variant) == [
        ("mine", MINE), ("train", BACKBONE), ("pretrain", chain["pretrain"]), ("regenerate", chain["regenerate"]),
        ("compose", COMPOSE[variant]), ("train", TARGET[variant])]


@pytest.mark.parametrize("variant", ["dr4sr+", "constant"])
def test_personalized_variants_share_the_dr4sr_data(tiny_dataset, tmp_path, variant):
    got = ids(tiny_dataset, tmp_path, variant)
    assert got[:5] == ids(tiny_dataset, tmp_path, "dr4sr")[:5]
    assert got[5][1] not in (TARGET["dr4sr"], None)  # the personalizer enters the target's id
    if variant == "dr4sr+":
        assert got[5] == ("train", TARGET["dr4sr+"])


def test_graph_backbone_on_regenerated_data(tiny_dataset, tmp_path):
    got = ids(tiny_dataset, tmp_path, "dr4sr", backbone="gcegnn")
    assert got[-2:] == [("graph", GCEGNN_GRAPH), ("train", TARGET["gcegnn dr4sr"])]  # the original rows' graph


def test_paper_era_init_keeps_its_content_id(tiny_dataset, tmp_path):
    run = prepared(tiny_dataset, tmp_path, "dr4sr", preset="paper-era")
    init = run.graph.target.data.regenerate.pretrain.init
    assert stage_id(init, run.store) is None  # its rows are not composed yet
    execute(StageGraph(init.data), run.store, log=lambda *_: None)  # mine + compose: no training
    assert stage_id(init.data.mine, run.store) == MINE and stage_id(init.data, run.store) == COMPOSE["pattern"]
    assert stage_id(init, run.store) == PAPER_INIT
    regen = run.graph.target.data.regenerate
    assert (stage_id(regen.pretrain, run.store), stage_id(regen, run.store)) == (PAPER["pretrain"], PAPER["regenerate"])


def test_paper_era_pattern_target_is_the_regenerators_init(tiny_dataset, tmp_path):
    """With init.data=pattern the init is SASRec on the pattern rows: the `pattern` target with the same
    SASRec configuration is that very model, so both must name one artifact (trained once), and the id is
    the one both had before the stage graph."""
    dr4sr = prepared(tiny_dataset, tmp_path, "dr4sr", preset="paper-era")
    init = dr4sr.graph.target.data.regenerate.pretrain.init
    execute(StageGraph(init.data), dr4sr.store, log=lambda *_: None)  # mine + compose: no training
    pattern = prepared(tiny_dataset, tmp_path, "pattern", preset="paper-era")
    assert [s.kind for s in pattern.graph.order()] == ["mine", "compose", "train"]
    assert stage_id(pattern.graph.target, pattern.store) == stage_id(init, dr4sr.store) == PAPER_INIT
    # another seed is another model, still hashed the same way (not the composed-train format)
    other = prepared(tiny_dataset, tmp_path, "pattern", preset="paper-era", seed=1)
    assert stage_id(other.graph.target, other.store) not in (None, PAPER_INIT, TARGET["pattern"])
