"""Bad data files: each stops with one line naming the file (and line), through the CLI too."""
from __future__ import annotations

import pytest

from dr4sr.cli import main
from dr4sr.data import sequences
from dr4sr.data.sequences import read_interaction_log, read_text_sequences
from dr4sr.errors import DataFormatError


def _err(path, reader=read_text_sequences) -> str:
    with pytest.raises(DataFormatError) as err:
        reader(path)
    return str(err.value)


def test_binary_file(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"1 2 3 4\n\x89PNG\x00\x01\x02\n")
    assert _err(path) == f"{path}:2: NUL byte: a binary file, not a text dataset"


def test_latin1_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("1 2 3 4\n2 5 6 7\n3 caf\u00e9 8 9\n".encode("latin-1"))
    assert _err(path) == f"{path}:3: not UTF-8 text (byte 0xe9 at column 6)"


def test_absurdly_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(sequences, "MAX_LINE_BYTES", 1000)  # the real cap is 64 MiB; same code path
    path = tmp_path / "long.txt"
    path.write_text("1 2 3 4\n2 " + "5 " * 600 + "\n3 4 5 6\n")
    assert _err(path) == f"{path}:2: line longer than 1,000 bytes; expected 'user item item ...' per line"
    path.write_text("1 2 3 4\n2 " + "5 " * 400 + "\n")  # 802 bytes: fine, and read whole
    assert len(read_text_sequences(path).sequences[1]) == 400


def test_crlf_lines_are_read(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"1 2 3 4\r\n2 5 6 7\r\n")
    assert [s.tolist() for s in read_text_sequences(path).sequences] == [[2, 3, 4], [5, 6, 7]]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_header_only_log(tmp_path, suffix):
    import pandas as pd

    path = tmp_path / f"log{suffix}"
    df = pd.DataFrame({"user": pd.Series([], dtype="int64"), "item": pd.Series([], dtype="int64"),
                       "timestamp": pd.Series([], dtype="int64")})
    df.to_parquet(path) if suffix == ".parquet" else df.to_csv(path, index=False)
    assert _err(path, read_interaction_log) == (f"{path}: no rows (a header only?); "
                                                "expected one (user, item, timestamp) per row")


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert _err(path, read_interaction_log).startswith(f"{path}: cannot parse as a table: ")


def test_non_numeric_timestamp_names_the_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\na,1,100\na,2,101\nb,1,yesterday\n")
    assert _err(path, read_interaction_log) == (f"{path}:4: timestamp 'yesterday' is not a number "
                                                "(expected numeric or datetime timestamps)")


def test_missing_value_names_the_csv_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\na,1,100\na,,101\n")
    assert _err(path, read_interaction_log) == f"{path}:3: empty value in user/item/timestamp"


def test_parquet_that_is_not_parquet(tmp_path):
    path = tmp_path / "log.parquet"
    path.write_text("user,item,timestamp\n")
    assert _err(path, read_interaction_log).startswith(f"{path}: cannot parse as a table: ")


@pytest.mark.parametrize("name, content", [
    ("bin.txt", b"\x00\x01\x02garbage"),
    ("latin.txt", "1 caf\u00e9 2 3\n".encode("latin-1")),
    ("log.csv", b"user,item,timestamp\nu,1,x\n"),
    ("head.csv", b"user,item,timestamp\n"),
])
def test_cli_one_line_no_traceback_nothing_written(tmp_path, capsys, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    out, store = tmp_path / "out", tmp_path / "store"
    assert main(["run", "--dataset", str(path), "--variant", "backbone", "--out", str(out), "--store", str(store),
                 "--smoke-test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dr4sr: error: {path}") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out-smoke").exists() and not store.exists()
