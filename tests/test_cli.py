import json
import os

import pytest

from dr4sr.cli import main


def test_train_smoke_writes_metrics_and_user_ranks(tiny_dataset, tmp_path, capsys):
    assert main(["train", "--dataset", str(tiny_dataset), "--backbone", "sasrec", "--out", str(tmp_path / "run"),
                 "--smoke-test", "--set", "train.batch_size=32"]) == 0
    out = tmp_path / "run-smoke"  # smoke numbers never land where a real run's do
    assert not (tmp_path / "run").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["test"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    assert m["epochs"] == 2 and m["config"]["train"]["batch_size"] == 32
    assert {"valid", "best_epoch", "seconds_per_epoch", "config"} <= set(m)
    assert m["peak_rss_mb"] > 50 and "peak_gpu_mb" not in m  # a torch process on the CPU
    import pyarrow.parquet as pq

    t = pq.read_table(out / "user_metrics.parquet")
    assert t.column_names == ["user", "rank"] and t.num_rows == 60
    printed = capsys.readouterr().out
    assert "recall@10" in printed and "peak RSS" in printed
    assert printed.startswith("smoke test (2 epochs): not a result\n")
    assert m["smoke_test"] == "smoke test (2 epochs): not a result"
    assert printed.rstrip().endswith(f"{out}/model.pt")  # the command ends with the paths it wrote


def test_data_stats(tiny_dataset, capsys):
    assert main(["data", "stats", "--dataset", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "#users            60" in out and "#items" in out


@pytest.mark.parametrize("content, needle", [
    ("1 2 3 4\n2 5 x 7\n", ":2: non-integer token 'x'"),
    ("1 2 3 4\n2 5 0 7\n", ":2: item id 0 is not positive"),
    ("1 2 3 4\n1 5 6 7\n", ":2: duplicate user 1"),
    ("1 2 3 4\n2 5 6 7\n3 1\n", ":3: user 3 has 1 items"),
])
def test_malformed_data_names_file_and_line_and_writes_nothing(tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    out = tmp_path / "out"
    assert main(["train", "--dataset", str(bad), "--out", str(out), "--smoke-test"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}{needle}" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out-smoke").exists()


def test_unknown_backbone_and_key_and_dataset(tiny_dataset, tmp_path, capsys):
    assert main(["train", "--dataset", str(tiny_dataset), "--backbone", "transformer4rec", "--out", str(tmp_path)]) == 2
    assert "unknown backbone 'transformer4rec'" in capsys.readouterr().err
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path), "--set", "train.epochz=3"]) == 2
    assert "unknown config key 'train.epochz'" in capsys.readouterr().err
    assert main(["train", "--dataset", "movielens", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'movielens'" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir(tiny_dataset, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(ro / "x"), "--smoke-test"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_output_path_that_is_a_file(tiny_dataset, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(f / "sub"), "--smoke-test"]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["train"], ["train", "--smoke-test"], ["run", "--smoke-test"], ["compare"], ["compare", "--smoke-test"],
])
def test_a_file_as_out_is_one_line_and_gets_no_smoke_folder(tiny_dataset, tmp_path, capsys, command):
    """`--out README.md --smoke-test` once wrote README.md-smoke/ beside the file."""
    a_file = tmp_path / "README.md"
    a_file.write_text("not a folder\n")
    assert main(command + ["--dataset", str(tiny_dataset), "--out", str(a_file)]) == 2
    assert capsys.readouterr().err == f"dr4sr: error: --out {a_file} is a file, not a folder; give a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "tiny.txt"]


@pytest.mark.parametrize("command", [["run"], ["compare", "--smoke-test"]])
def test_a_file_as_store_is_one_line(tiny_dataset, tmp_path, capsys, command):
    a_file = tmp_path / "store.txt"
    a_file.write_text("")
    assert main(command + ["--dataset", str(tiny_dataset), "--out", str(tmp_path / "o"), "--store", str(a_file)]) == 2
    assert capsys.readouterr().err == f"dr4sr: error: --store {a_file} is a file, not a folder; give a folder\n"
    assert not (tmp_path / "o").exists() and not (tmp_path / "o-smoke").exists()


def test_smoke_dr4sr_plus_takes_upper_steps(tiny_dataset, tmp_path, capsys):
    """The personalizer's 10 warm-up epochs would outlast a 2-epoch smoke run: DR4SR+ rows would equal
    DR4SR's. The smoke budget shortens the warm-up, so the upper level runs."""
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "plus"), "--smoke-test",
                 "--set", "personalizer.enabled=true"]) == 0
    m = json.loads((tmp_path / "plus-smoke" / "metrics.json").read_text())
    assert m["epochs"] == 2 and m["personalizer"]["upper_steps"] >= 1
    assert m["config"]["personalizer"]["warmup_epochs"] < m["epochs"]
