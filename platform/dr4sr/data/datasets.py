"""Resolve `--dataset` to a file: a benchmark name (from a data dir, or downloaded and verified) or a path."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from dr4sr.data.sequences import SequenceData, read_interaction_log, read_text_sequences
from dr4sr.errors import DR4SRError
from dr4sr.paths import require_writable

UPSTREAM_BASE = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/"

# name -> (upstream file, sha256 of the file, as in shared/datasets/SHA256SUMS)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "beauty": ("Beauty.txt", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
    "sports": ("Sports_and_Outdoors.txt", "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2"),
    "toys": ("Toys_and_Games.txt", "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f"),
    "yelp": ("Yelp.txt", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
}
RAW_LOG_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
DATA_HINT = "put <name>.txt in a folder and pass --data-dir DIR (or set DR4SR_DATA_DIR=DIR)"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dr4sr" / "datasets"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_verified(url: str, dest: Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download to a temp file beside `dest`, verify, then rename: a failure leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        got = sha256_of(Path(tmp))
        if got != sha256:
            raise DR4SRError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; file discarded")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:
        raise DR4SRError(f"cannot download {url} to {dest}: {exc}; {DATA_HINT}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve_dataset_path(dataset: str, data_dir: str | None = None, download: bool = True) -> Path:
    """Benchmark name -> `<data dir>/<name>.txt` (data dir: argument, $DR4SR_DATA_DIR, or the cache)."""
    name = dataset.lower()
    if name not in BENCHMARKS:
        path = Path(dataset).expanduser()
        if path.exists():
            return path
        raise DR4SRError(
            f"unknown dataset {dataset!r}: not one of {sorted(BENCHMARKS)} and no such file")
    origin = "--data-dir" if data_dir else "$DR4SR_DATA_DIR"
    data_dir = data_dir or os.environ.get("DR4SR_DATA_DIR")
    if data_dir:
        path = Path(data_dir).expanduser() / f"{name}.txt"
        if not path.exists():
            raise DR4SRError(f"dataset {name!r}: {path} does not exist (data dir from {origin})")
        return path
    path = cache_dir() / f"{name}.txt"
    if path.exists():
        return path
    if not download:
        raise DR4SRError(f"dataset {name!r} is not in {cache_dir()} and download is off; {DATA_HINT}")
    require_writable(cache_dir(), "data cache", DATA_HINT)
    upstream, sha = BENCHMARKS[name]
    return download_verified(UPSTREAM_BASE + upstream, path, sha)


def load_dataset(dataset: str, data_dir: str | None = None, k_core: int = 5) -> SequenceData:
    """Load a benchmark name, a text file in the benchmark format, or a raw CSV/Parquet log."""
    path = resolve_dataset_path(dataset, data_dir)
    if path.suffix.lower() in RAW_LOG_SUFFIXES:
        return read_interaction_log(path, k_core=k_core)
    return read_text_sequences(path)
