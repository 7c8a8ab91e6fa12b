"""`dr4sr report --personalizer-figure`: Figure 4 from the weights files of DR4SR+ runs."""
import numpy as np
import pandas as pd

from dr4sr.cli import main
from dr4sr.personalizer.figure import pick_rows, weight_grid


def _write(run, spread, seed):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(40), 4)
    pos = np.tile(np.arange(1, 5), 40)
    fixed = rows >= 30  # the last 10 rows are mined patterns at weight 1
    weight = np.where(fixed, 1.0, 0.5 + spread * rng.standard_normal(len(rows)))
    run.mkdir()
    pd.DataFrame({"row": rows, "position": pos.astype(np.int32), "weight": weight.astype(np.float32),
                  "fixed": fixed}).to_parquet(run / "personalizer_weights.parquet")
    return weight[~fixed]


def test_grid_places_each_weight_at_its_row_and_position():
    table = pd.DataFrame({"row": [5, 5, 9], "position": [1, 3, 2], "weight": [0.1, 0.3, 0.9], "fixed": False})
    grid = weight_grid(table, np.array([5, 9]))
    assert grid.shape == (2, 3) and grid[0, 0] == 0.1 and grid[0, 2] == 0.3 and grid[1, 1] == 0.9
    assert np.isnan(grid[0, 1]) and np.isnan(grid[1, 0])
    assert set(pick_rows(pd.concat([table, table.assign(row=7, fixed=True)]), 5)) == {5}  # rows with >= 2 targets


def test_report_draws_the_figure_and_prints_variances(tmp_path, capsys):
    calm = _write(tmp_path / "sasrec", 0.01, 0)
    busy = _write(tmp_path / "gru4rec", 0.1, 1)
    png = tmp_path / "fig" / "fig4.png"
    assert main(["report", "--personalizer-figure", str(png), "--run", f"sasrec={tmp_path / 'sasrec'}",
                 "--run", f"gru4rec={tmp_path / 'gru4rec'}"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    out = capsys.readouterr().out
    # variances over the re-weighted rows only (fixed rows excluded), as pandas computes them
    assert f"sasrec {np.var(calm.astype(np.float32), ddof=1):.3e}" in out
    assert f"gru4rec {np.var(busy.astype(np.float32), ddof=1):.3e}" in out


def test_a_run_without_weights_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    assert main(["report", "--personalizer-figure", str(tmp_path / "f.png"), "--run", f"x={tmp_path / 'plain'}"]) == 2
    assert "no personalizer_weights.parquet" in capsys.readouterr().err
