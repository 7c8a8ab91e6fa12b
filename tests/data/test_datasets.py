"""Dataset resolution, the verified downloader (against a local HTTP server), the parsers' errors,
raw-log k-core filtering, and the real benchmark files against their checksums and Table 1."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from dr4sr.data import datasets
from dr4sr.data.datasets import BENCHMARKS, load_dataset, resolve_dataset_path, sha256_of
from dr4sr.data.sequences import read_interaction_log, read_text_sequences
from dr4sr.errors import DataFormatError, DR4SRError

TINY = "1 1 2 3 4\n2 2 3 4 5 6\n3 5 4 3\n"


# ---------------------------------------------------------------- local HTTP server + isolated cache

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path/www on 127.0.0.1:<free port>; yields (folder, base URL, list of requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No data dir from the environment, a private cache dir, no proxies for 127.0.0.1."""
    monkeypatch.delenv("DR4SR_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "xdg" / "dr4sr" / "datasets"


def _serve(monkeypatch, http_root, content: str, sha: str | None = None) -> str:
    root, base, _ = http_root
    (root / "Tiny_Upstream.txt").write_text(content)
    sha = sha or hashlib.sha256(content.encode()).hexdigest()
    monkeypatch.setattr(datasets, "UPSTREAM_BASE", base)
    monkeypatch.setattr(datasets, "BENCHMARKS", {**BENCHMARKS, "tiny": ("Tiny_Upstream.txt", sha)})
    return sha


def test_cache_dir_follows_xdg_cache_home(isolated):
    assert datasets.cache_dir() == isolated


def test_download_success_verifies_and_caches(monkeypatch, http_root, isolated):
    sha = _serve(monkeypatch, http_root, TINY)
    path = resolve_dataset_path("tiny")
    assert path == isolated / "tiny.txt"
    assert path.read_text() == TINY and sha256_of(path) == sha
    assert sorted(p.name for p in isolated.iterdir()) == ["tiny.txt"]  # no temp files left
    requests = http_root[2]
    assert requests == ["/Tiny_Upstream.txt"]
    assert resolve_dataset_path("TINY") == path  # names are case-insensitive; the cache is reused
    assert len(requests) == 1
    assert load_dataset("tiny").num_interactions == 12


def test_checksum_mismatch_raises_and_leaves_nothing(monkeypatch, http_root, isolated):
    _serve(monkeypatch, http_root, TINY, sha="0" * 64)
    with pytest.raises(DR4SRError, match="checksum mismatch"):
        resolve_dataset_path("tiny")
    assert not isolated.exists() or list(isolated.iterdir()) == []  # no dataset, no temp file
    assert not (isolated / "tiny.txt").exists()


def test_http_error_raises_and_leaves_nothing(monkeypatch, http_root, isolated):
    _serve(monkeypatch, http_root, TINY)
    (http_root[0] / "Tiny_Upstream.txt").unlink()  # 404
    with pytest.raises(DR4SRError, match="cannot download"):
        resolve_dataset_path("tiny")
    assert not isolated.exists() or list(isolated.iterdir()) == []


def test_download_off(monkeypatch, http_root, isolated):
    _serve(monkeypatch, http_root, TINY)
    with pytest.raises(DR4SRError, match="download is off"):
        resolve_dataset_path("tiny", download=False)
    assert http_root[2] == []


# ---------------------------------------------------------------- resolution order, names, paths

def test_resolution_order(monkeypatch, tmp_path, isolated):
    arg_dir, env_dir = tmp_path / "arg", tmp_path / "env"
    for d in (arg_dir, env_dir, isolated):
        d.mkdir(parents=True)
        (d / "beauty.txt").write_text(TINY)
    assert resolve_dataset_path("beauty") == isolated / "beauty.txt"  # cache, nothing else set
    monkeypatch.setenv("DR4SR_DATA_DIR", str(env_dir))
    assert resolve_dataset_path("beauty") == env_dir / "beauty.txt"  # $DR4SR_DATA_DIR beats the cache
    assert resolve_dataset_path("beauty", str(arg_dir)) == arg_dir / "beauty.txt"  # --data-dir beats both


def test_data_dir_without_the_file_names_its_origin(monkeypatch, tmp_path, isolated):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DR4SRError, match=r"beauty\.txt does not exist \(data dir from --data-dir\)"):
        resolve_dataset_path("beauty", str(empty))
    monkeypatch.setenv("DR4SR_DATA_DIR", str(empty))
    with pytest.raises(DR4SRError, match=r"data dir from \$DR4SR_DATA_DIR"):
        resolve_dataset_path("beauty")


def test_unknown_dataset_name(isolated):
    with pytest.raises(DR4SRError, match=r"unknown dataset 'no-such-set'.*beauty"):
        resolve_dataset_path("no-such-set")


def test_path_datasets(tmp_path, isolated):
    text = tmp_path / "my data.txt"
    text.write_text(TINY)
    assert resolve_dataset_path(str(text)) == text
    data = load_dataset(str(text))
    assert data.num_users == 3 and data.num_items == 6 and data.source == str(text)
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,timestamp\n"
                   + "".join(f"{u},{i},{t}\n" for u in range(3) for t, i in enumerate(range(3))))
    data = load_dataset(str(csv), k_core=3)  # raw logs go through read_interaction_log
    assert data.num_users == 3 and data.num_items == 3


# ---------------------------------------------------------------- text format errors name file and line

@pytest.mark.parametrize("line, message", [
    ("2 5 x 7", "non-integer token 'x'"),
    ("2 5 0 7", "item id 0 is not positive"),
    ("2 5 -3 7", "item id -3 is not positive"),
    ("1 5 6 7", "duplicate user 1 (first seen on line 1)"),
    ("2 5 6", "user 2 has 2 items"),
])
def test_text_format_errors(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(f"1 1 2 3\n\n{line}\n")  # the blank line 2 is skipped but still counted
    with pytest.raises(DataFormatError) as err:
        read_text_sequences(path)
    assert str(err.value).startswith(f"{path}:3: "), str(err.value)
    assert message in str(err.value)
    assert err.value.line == 3


def test_text_format_empty_and_missing(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataFormatError, match="empty dataset"):
        read_text_sequences(tmp_path / "empty.txt")
    with pytest.raises(DataFormatError, match="cannot read file"):
        read_text_sequences(tmp_path / "missing.txt")


# ---------------------------------------------------------------- raw interaction logs

def _cascade_log():
    """k=3 case that needs iterations: dropping items E,F,G,H empties u5 and leaves u4 with only D;
    dropping u4 leaves item D with 2 users, so D must go too (a single pass would keep it)."""
    rows = []
    seqs = {"u1": "ABCD", "u2": "ABCD", "u3": "ABC", "u4": "DEF", "u5": "EGH"}
    for user, items in seqs.items():
        for t, item in enumerate(items):
            rows.append((user, item, 100 + t))
    return rows


def _write_log(path: Path, rows, columns=("user", "item", "timestamp")):
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(columns))
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_iterative_k_core_counts_dropped_users(tmp_path, suffix):
    data = read_interaction_log(_write_log(tmp_path / f"log{suffix}", _cascade_log()), k_core=3)
    assert data.num_users == 3 and data.dropped_users == 2
    assert data.num_items == 3  # A, B, C -> 1, 2, 3; D is gone
    assert [s.tolist() for s in data.sequences] == [[1, 2, 3]] * 3
    assert data.users.tolist() == [1, 2, 3]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_log_orders_by_timestamp_and_remaps_ids(tmp_path, suffix):
    rows = [  # file order is not time order; raw ids are strings / sparse integers
        ("bob", 900, 30), ("bob", 205, 10), ("bob", 101, 20),
        ("alice", 101, 5), ("alice", 900, 1), ("alice", 205, 3),
        ("carol", 205, 7), ("carol", 900, 7), ("carol", 101, 7),  # equal times keep file order
    ]
    data = read_interaction_log(_write_log(tmp_path / f"log{suffix}", rows), k_core=1)
    # items 101, 205, 900 -> 1, 2, 3; users sorted by raw id -> alice 1, bob 2, carol 3
    assert data.users.tolist() == [1, 2, 3]
    assert [s.tolist() for s in data.sequences] == [[3, 2, 1], [2, 1, 3], [2, 3, 1]]
    assert data.num_items == 3 and data.dropped_users == 0
    assert all(s.dtype == np.int64 for s in data.sequences)


def test_log_short_users_are_dropped_and_counted(tmp_path):
    rows = [("a", i, i) for i in range(1, 4)] + [("b", 1, 1), ("b", 2, 2)]  # b has 2 < 3 items
    data = read_interaction_log(_write_log(tmp_path / "log.csv", rows), k_core=1)
    assert data.num_users == 1 and data.dropped_users == 1


def test_log_errors(tmp_path):
    path = _write_log(tmp_path / "log.csv", [("a", 1, 1)], columns=("user", "product", "timestamp"))
    with pytest.raises(DataFormatError, match=r"missing column\(s\) \['item'\]") as err:
        read_interaction_log(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataFormatError, match="no interactions left after 5-core"):
        read_interaction_log(_write_log(tmp_path / "few.csv", [("a", 1, 1), ("a", 2, 2)]), k_core=5)


# ---------------------------------------------------------------- the real benchmark files

def _shared_datasets() -> Path | None:
    """$DR4SR_DATA_DIR (tests/conftest.py defaults it to ../shared/datasets beside the repository)."""
    data_dir = Path(os.environ["DR4SR_DATA_DIR"])
    return data_dir if (data_dir / "beauty.txt").is_file() else None


SHARED = _shared_datasets()
needs_shared = pytest.mark.skipif(SHARED is None, reason="benchmark files not found in $DR4SR_DATA_DIR "
                                  f"({os.environ['DR4SR_DATA_DIR']})")


def _table1() -> dict[str, tuple[int, int, int]]:
    """`| beauty.txt | 22,363 | 12,101 | 198,502 | ...` rows of the datasets README."""
    rows = {}
    for line in (SHARED / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*(\w+)\.txt\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|", line)
        if m:
            rows[m.group(1)] = tuple(int(g.replace(",", "")) for g in m.groups()[1:])
    return rows


@needs_shared
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shared_file_checksum(name):
    assert sha256_of(SHARED / f"{name}.txt") == BENCHMARKS[name][1]
    sums = (SHARED / "SHA256SUMS").read_text() if (SHARED / "SHA256SUMS").exists() else ""
    if sums:
        assert f"{BENCHMARKS[name][1]}  {name}.txt" in sums


@needs_shared
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shared_file_matches_table1(name, isolated):
    table = _table1()
    if name not in table:
        pytest.skip(f"{name} not in {SHARED / 'README.md'}")
    data = load_dataset(name, data_dir=str(SHARED))
    assert (data.num_users, data.num_items, data.num_interactions) == table[name]
    assert min(len(s) for s in data.sequences) >= 5
