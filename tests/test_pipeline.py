"""`dr4sr run` / `dr4sr compare` end to end on a tiny dataset (every stage, 2 epochs each)."""
import json

import pytest

from dr4sr.cli import main
from dr4sr.errors import ConfigError
from dr4sr.pipeline import RunRequest, run_variant


@pytest.mark.slow
def test_compare_backbone_pattern_dr4sr_smoke(tiny_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["compare", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "cmp"), "--store", str(store),
                 "--smoke-test", "--variants", "backbone", "pattern", "dr4sr",
                 "--set", "regen.k=2"]) == 0
    out = tmp_path / "cmp-smoke"
    summary = json.loads((out / "compare.json").read_text())
    assert set(summary["test"]) == {"backbone", "pattern", "dr4sr"}
    assert set(summary["significance"]) == {"pattern", "dr4sr"}
    printed = capsys.readouterr().out
    assert "| backbone |" in printed and "| dr4sr |" in printed
    label = "smoke test (2 epochs): not a result"
    assert (out / "compare.md").read_text().splitlines()[0] == label and summary["note"] == label
    assert f"\n{label}\n| " in printed
    # the plan comes first: 8 distinct stages (the backbone run is also the regenerator's init), none cached
    assert "plan: compare backbone vs pattern vs dr4sr" in printed and "8 stage(s), 0 cached" in printed
    assert printed.count("] pretrain regenerator: done in ") == 1
    assert printed.rstrip().splitlines()[-1].startswith(f"wrote {out}/compare.md, {out}/compare.json")
    dr = json.loads((out / "dr4sr-seed0" / "metrics.json").read_text())
    assert dr["variant"] == "dr4sr" and dr["training_data"] == "regenerated+mined+original"
    assert dr["train_rows"] > 60  # original rows plus mined and regenerated ones
    # the regenerator's SASRec init is the backbone run itself (same config, same data): trained once
    assert len(list((store / "train").iterdir())) == 3
    # rerunning reuses every artifact: no new training
    assert main(["run", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "again"), "--store", str(store),
                 "--smoke-test", "--variant", "dr4sr", "--set", "regen.k=2"]) == 0
    again = json.loads((tmp_path / "again-smoke" / "metrics.json").read_text())
    assert "6 stage(s), 6 cached" in capsys.readouterr().out
    assert again["test"] == dr["test"] and again["train_artifact"] == dr["train_artifact"]


def test_bad_variant_and_section(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="unknown variant"):
        run_variant(RunRequest(str(tiny_dataset), variant="dr5sr"), tmp_path)
    with pytest.raises(ConfigError, match="unknown config section 'regenx'"):
        run_variant(RunRequest(str(tiny_dataset), overrides={"regenx": {"k": 1}}), tmp_path)


@pytest.mark.slow
def test_paper_era_preset_end_to_end(tiny_dataset, tmp_path):
    """The preset's recipe runs every stage; its init SASRec is the `pattern` run's own artifact."""
    store = tmp_path / "store"
    common = ["--dataset", str(tiny_dataset), "--store", str(store), "--smoke-test", "--preset", "paper-era",
              "--set", "regen.k=2"]
    assert main(["run", "--variant", "pattern", "--out", str(tmp_path / "pattern"), *common]) == 0
    pat = json.loads((tmp_path / "pattern-smoke" / "metrics.json").read_text())  # --smoke-test: own folder
    assert pat["preset"] == "paper-era" and pat["compose"] == {"mined": "all", "dedupe": "none"}
    mine = next((store / "mine").iterdir())
    n_patterns = len(__import__("pyarrow.parquet").parquet.read_table(mine / "patterns.parquet"))
    assert pat["rows_by_source"] == {"original": 60, "mined": n_patterns}  # every mined pattern, concatenated
    assert main(["run", "--variant", "dr4sr", "--out", str(tmp_path / "dr4sr"), *common]) == 0
    dr = json.loads((tmp_path / "dr4sr-smoke" / "metrics.json").read_text())
    assert dr["preset"] == "paper-era" and dr["regen_config"]["regenerate"]["memories"] == [0]
    assert set(dr["rows_by_source"]) == {"original", "mined", "generated"}
    assert dr["rows_by_source"]["mined"] == n_patterns
    # pattern's model is the regenerator's init (SASRec on the same rows, same seed): trained once, under the
    # id it had before compose artifacts (tests/stages/test_golden_ids.py); and dr4sr's
    assert len(list((store / "train").iterdir())) == 2
    assert pat["train_artifact"] == "8600f90ae362b880"
    assert json.loads((store / "compose" / pat["compose_artifact"] / "manifest.json").read_text())["rows"] == \
        pat["rows_by_source"]
    (pre,) = [p for p in (store / "pretrain").iterdir() if not p.name.startswith(".")]
    manifest = json.loads((pre / "manifest.json").read_text())
    assert manifest["preset"] == "paper-era" and manifest["init_data"] == "pattern"
    init = json.loads((store / "train" / manifest["inputs"]["init"] / "manifest.json").read_text())
    assert init["inputs"]["sequences"].startswith("mined+original:")
    (regen,) = [p for p in (store / "regenerate").iterdir() if not p.name.startswith(".")]
    by_memory = json.loads((regen / "manifest.json").read_text())["rows_by_memory"]
    assert list(by_memory) == ["0"] and by_memory["0"]["decoded"] == 60
