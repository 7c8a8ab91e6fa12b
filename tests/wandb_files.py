"""Reading W&B's offline run files back (wandb 0.31 ships no Python reader): a `run-<id>.wandb` file is a
LevelDB-style log (a 7-byte file header, 32 KiB blocks, each record a 7-byte header + a chunk) of wandb's
own protobuf `Record`s."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, LAST = 1, 4


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, buf, records = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + HEADER])
        if pos + HEADER + length > len(data):  # still being written
            break
        buf += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(buf)
            records.append(rec)
            buf = b""
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def complete_records(path: Path, timeout: float = 60.0) -> list:
    """The records once the run's exit record is on disk: wandb's service writes the file and may finish
    it shortly after `run.finish()` returned."""
    deadline = time.time() + timeout
    while True:
        records = read_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.time() > deadline:
            return records
        time.sleep(0.2)


class OfflineRun:
    """One offline run folder: its run record (name, tags), config, history rows, summary and exit code."""

    def __init__(self, folder: Path):
        (self.file,) = Path(folder).glob("run-*.wandb")
        self.run, self.history, self.summary, self.config, self.exit_code = None, [], {}, {}, None
        for rec in complete_records(self.file):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                self.run = rec.run
                self.config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "config":
                self.config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
            elif kind == "history":
                self.history.append({_key(i): json.loads(i.value_json) for i in rec.history.item})
            elif kind == "summary":
                self.summary.update({_key(i): json.loads(i.value_json) for i in rec.summary.update})
            elif kind == "exit":
                self.exit_code = rec.exit.exit_code

    @property
    def tags(self) -> list[str]:
        return list(self.run.tags)


def offline_runs(wandb_dir: Path) -> dict[str, OfflineRun]:
    """Display name -> run, for every offline run under `wandb_dir` (the `wandb/` folder)."""
    runs = [OfflineRun(d) for d in sorted(Path(wandb_dir).glob("offline-run-*"))]
    return {r.run.display_name: r for r in runs}
