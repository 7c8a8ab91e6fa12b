import json

from planted import planted_data

from dr4sr.cli import build_parser, main


def test_subcommands_are_registered():
    parser = build_parser()
    args = parser.parse_args(["regenerate", "--dataset", "beauty", "--gamma", "0.3", "--k", "3", "--workers", "2"])
    assert (args.gamma, args.k, args.workers, args.seed) == (0.3, 3, 2, None)
    args = parser.parse_args(["pretrain", "--dataset", "toys", "--alpha", "10", "--set", "regen.k=2"])
    assert args.alpha == 10 and args.overrides == ["regen.k=2"]


def test_regenerate_end_to_end_on_a_text_file(tmp_path, capsys):
    seqs, _, _ = planted_data(80, seed=2)
    # 2 extra items per user: leave-one-out takes them as valid/test targets
    path = tmp_path / "planted.txt"
    path.write_text("".join(f"{u} " + " ".join(map(str, list(s) + [39, 40])) + "\n" for u, s in enumerate(seqs, 1)))
    argv = ["regenerate", "--dataset", str(path), "--out", str(tmp_path / "store"), "--init", "scratch",
            "--alpha", "4", "--set", "mine.beta=5", "--set", "regen.hidden_size=16", "--set", "regen.inner_size=32",
            "--set", "pretrain.max_epochs=2", "--set", "regen.k=2", "--gamma", "0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "regenerate artifact" in out and "regenerated+mined+original" in out
    stats_files = list((tmp_path / "store" / "regenerate").glob("*/stats.json"))
    assert len(stats_files) == 1
    stats = json.loads(stats_files[0].read_text())
    assert stats["generated_rows_before_dedupe"] == 80 * 2
    counts = stats["training_rows"]["regenerated+mined+original"]
    assert f"{sum(counts.values()):>10,}  {counts}" in out  # the printed table is the stored one
    # another compose config reuses the artifact (not in its id); the table describes its rows
    assert main(argv + ["--set", "compose.mined=paired", "--set", "compose.dedupe=across"]) == 0
    out = capsys.readouterr().out
    assert "compose.mined=paired, compose.dedupe=across" in out and "reusing regenerate dataset" in out
    assert len(list((tmp_path / "store" / "regenerate").glob("*/stats.json"))) == 1
    assert f"{sum(counts.values()):>10,}  {counts}" not in out
    assert main(argv[:-2] + ["--set", "regen.kk=1"]) == 2  # unknown key: clean error, exit 2
    assert "regen.kk" in capsys.readouterr().err
