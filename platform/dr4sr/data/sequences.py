"""Parse user sequences: the benchmark text format and raw interaction logs (CSV/Parquet).

`SequenceData` is the in-memory form every stage starts from: one chronological item sequence per
user, item ids 1..num_items (0 is padding).
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from dr4sr.errors import DataFormatError

MIN_SEQUENCE_LENGTH = 3  # one training item, one validation target, one test target
MAX_LINE_BYTES = 64 * 2**20  # ~8M item ids on one line: far beyond any real user, short of exhausting memory


@dataclasses.dataclass
class SequenceData:
    users: np.ndarray  # int64 user ids as given in the file
    sequences: list[np.ndarray]  # chronological item ids (int64, >= 1)
    num_items: int  # largest item id; the item vocabulary is 1..num_items
    source: str  # path or name it was read from
    dropped_users: int = 0  # users removed by filtering (raw logs), reported by `stats`
    fingerprint: str = ""  # sha256 of the content, used in artifact ids

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))


def _hash_rows(h, sequences) -> None:
    for s in sequences:
        h.update(np.int64(len(s)).tobytes())
        h.update(np.asarray(s, dtype=np.int64).tobytes())


def rows_fingerprint(sequences) -> str:
    """Content hash of a list of item sequences (order and lengths included)."""
    h = hashlib.sha256()
    _hash_rows(h, sequences)
    return h.hexdigest()[:16]


def _fingerprint(users: np.ndarray, sequences: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(users, dtype=np.int64).tobytes())
    _hash_rows(h, sequences)
    return h.hexdigest()


def make_sequence_data(users, sequences, source: str, dropped_users: int = 0) -> SequenceData:
    users = np.asarray(users, dtype=np.int64)
    sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    if not sequences:
        raise DataFormatError(source, None, "no user sequences found (empty dataset)")
    num_items = int(max(int(s.max()) for s in sequences))
    return SequenceData(users, sequences, num_items, source, dropped_users, _fingerprint(users, sequences))


def read_text_sequences(path: str | Path) -> SequenceData:
    """Read `user item item ...` lines. Every malformed line is an error naming file and line."""
    path = Path(path)
    users: list[int] = []
    sequences: list[np.ndarray] = []
    seen: dict[int, int] = {}
    for lineno, line in _text_lines(path):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [int(f) for f in fields]
        except ValueError:
            bad = next(f for f in fields if not f.lstrip("-").isdigit())
            raise DataFormatError(path, lineno, f"non-integer token {bad!r}; expected 'user item item ...'") from None
        user, items = values[0], values[1:]
        if user in seen:
            raise DataFormatError(path, lineno, f"duplicate user {user} (first seen on line {seen[user]})")
        seen[user] = lineno
        bad_items = [i for i in items if i <= 0]
        if bad_items:
            raise DataFormatError(path, lineno, f"item id {bad_items[0]} is not positive (0 is reserved for padding)")
        if len(items) < MIN_SEQUENCE_LENGTH:
            raise DataFormatError(
                path, lineno,
                f"user {user} has {len(items)} items; leave-one-out needs at least {MIN_SEQUENCE_LENGTH}")
        users.append(user)
        sequences.append(np.asarray(items, dtype=np.int64))
    return make_sequence_data(users, sequences, str(path))


def _text_lines(path: Path):
    """(line number, text) of a UTF-8 text file, read line by line: a binary file, a bad byte or a
    line longer than MAX_LINE_BYTES stops at its line instead of filling memory or a traceback."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise DataFormatError(path, None, f"cannot read file ({exc.strerror})") from None
    with f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataFormatError(path, lineno, f"line longer than {MAX_LINE_BYTES:,} bytes; "
                                                    "expected 'user item item ...' per line")
            if b"\0" in raw:
                raise DataFormatError(path, lineno, "NUL byte: a binary file, not a text dataset")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, lineno, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                                    f"{exc.start + 1})") from None


def _read_table(path: Path):
    import pandas as pd

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=None, engine="python")
    except FileNotFoundError:
        raise DataFormatError(path, None, "file not found") from None
    except Exception as exc:  # pandas/pyarrow parse errors carry no file name
        raise DataFormatError(path, None, f"cannot parse as a table: {exc}") from None


def read_interaction_log(path: str | Path, user_col: str = "user", item_col: str = "item",
                         time_col: str = "timestamp", k_core: int = 5) -> SequenceData:
    """Read a raw (user, item, timestamp) log, apply iterative k-core, remap ids, order by time."""
    import pandas as pd

    path = Path(path)
    df = _read_table(path)
    missing = [c for c in (user_col, item_col, time_col) if c not in df.columns]
    if missing:
        raise DataFormatError(path, None, f"missing column(s) {missing}; found {list(df.columns)}")
    df = df[[user_col, item_col, time_col]]
    if df.empty:
        raise DataFormatError(path, None, "no rows (a header only?); expected one (user, item, timestamp) per row")
    first_data_line = 2 if path.suffix.lower() in (".csv", ".tsv") else 1  # CSV: line 1 is the header
    if df.isna().any().any():
        row = int(df.isna().any(axis=1).to_numpy().argmax())
        raise DataFormatError(path, row + first_data_line, "empty value in user/item/timestamp")
    times = df[time_col]
    if not (pd.api.types.is_numeric_dtype(times) or pd.api.types.is_datetime64_any_dtype(times)):
        numeric = pd.to_numeric(times, errors="coerce")
        row = int(numeric.isna().to_numpy().argmax())
        raise DataFormatError(path, row + first_data_line, f"timestamp {times.iloc[row]!r} is not a number "
                                                           "(expected numeric or datetime timestamps)")
    n_users_raw = df[user_col].nunique()
    while k_core > 1:
        ucount = df.groupby(user_col)[item_col].transform("size")
        icount = df.groupby(item_col)[user_col].transform("size")
        keep = (ucount >= k_core) & (icount >= k_core)
        if keep.all():
            break
        df = df[keep]
    if df.empty:
        raise DataFormatError(path, None, f"no interactions left after {k_core}-core filtering")
    # stable sort keeps file order for equal timestamps
    df = df.sort_values([user_col, time_col], kind="stable")
    items, item_codes = np.unique(df[item_col].to_numpy(), return_inverse=True)
    df = df.assign(_item=item_codes + 1)
    users, sequences = [], []
    for new_uid, (_, group) in enumerate(df.groupby(user_col, sort=True), start=1):
        seq = group["_item"].to_numpy()
        if len(seq) < MIN_SEQUENCE_LENGTH:
            continue
        users.append(new_uid)
        sequences.append(seq)
    dropped = n_users_raw - len(users)
    data = make_sequence_data(np.arange(1, len(users) + 1), sequences, str(path), dropped_users=int(dropped))
    return data
