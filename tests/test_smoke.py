"""One table of smoke budgets (dr4sr.smoke): every --smoke-test entry point builds the same artifacts."""
from dr4sr.cli import build_parser, main
from dr4sr.pipeline import RunRequest, prepare_run
from dr4sr.regen.cli import _prepare
from dr4sr.smoke import SMOKE_EPOCHS
from dr4sr.stages import Runtime, stage_id
from dr4sr.stages.variants import regeneration


def _run(dataset, store, variant="dr4sr", out=None):
    return prepare_run(RunRequest(str(dataset), variant=variant, smoke_test=True, store_root=str(store)),
                       out or store.parent / f"out-{variant}")


def test_regenerate_and_run_smoke_tests_plan_the_same_artifact_ids(tiny_dataset, tmp_path):
    store = tmp_path / "store"
    for command in ("regenerate", "pretrain"):
        args = build_parser().parse_args([command, "--dataset", str(tiny_dataset), "--out", str(store), "--smoke-test"])
        rcfg, splits, regen_store = _prepare(args)
        assert rcfg.pretrain.max_epochs == SMOKE_EPOCHS
        assert rcfg.init.sasrec["train"] == {"max_epochs": SMOKE_EPOCHS, "patience": SMOKE_EPOCHS}
        run = _run(tiny_dataset, store)
        regen = regeneration(splits, rcfg, Runtime())
        built = {s.label: stage_id(s, regen_store) for s in (regen.mine, regen.pretrain.init, regen.pretrain, regen)}
        planned = {p.label: p.id for p in run.plan[:-2]}  # what `dr4sr run` plans before composing its rows
        assert planned == built and all(planned.values())
    # the regenerator's SASRec init is the smoke run of the backbone variant
    backbone = _run(tiny_dataset, store, "backbone")
    assert backbone.plan[-1].id == planned["train sasrec (regenerator init)"]
    assert backbone.cfg.train.max_epochs == SMOKE_EPOCHS


def test_run_reuses_every_stage_regenerate_built(tiny_dataset, tmp_path):
    store = tmp_path / "store"
    assert main(["regenerate", "--dataset", str(tiny_dataset), "--out", str(store), "--smoke-test",
                 "--set", "regen.k=2"]) == 0
    run = prepare_run(RunRequest(str(tiny_dataset), variant="dr4sr", smoke_test=True, store_root=str(store),
                                 overrides={"regen": {"k": 2}}), tmp_path / "out")
    assert [p.stage for p in run.plan] == ["mine", "train", "pretrain", "regenerate", "compose", "train"]
    assert [p.state for p in run.plan[:-2]] == ["cached"] * 4
