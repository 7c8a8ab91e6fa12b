"""A grid's progress on disk and `dr4sr grid --status`: finished, running and remaining runs with their
wall times and an ETA from the measured ones.

The grid's driver keeps `<out>/status.json` (written atomically at every start and end of a run): its
pid and host, its number of slots, and per run label the state and times. A run whose metrics.json
holds test metrics is finished whatever status.json says; a run marked running by a driver that is no
longer alive was interrupted (the same command resumes it from its checkpoint).
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from dr4sr.paths import atomic_write, atomic_write_text
from dr4sr.search.progress import fmt_seconds

STATUS_NAME = "status.json"


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


class StatusFile:
    """The driver's side: records when each run starts and ends, keeping earlier drivers' records."""

    def __init__(self, out: Path, label: str, runs: list, slots: int | None, on_write=None):
        self.path = Path(out) / (STATUS_NAME if label == "grid" else f"status-{label}.json")
        self.on_write = on_write  # (path): e.g. push it to the bucket of a grid on s3://
        old = read_json(self.path).get("runs", {})
        for rec in old.values():
            if rec.get("state") == "running":  # its driver is gone: this one replaces it
                rec["state"] = "interrupted"
        self.data = {"label": label, "pid": os.getpid(), "host": socket.gethostname(), "slots": slots,
                     "driver_started": time.time(), "runs": old}
        self._flush()

    def _flush(self) -> None:
        self.data["updated"] = time.time()
        atomic_write_text(self.path, json.dumps(self.data, indent=2))
        if self.on_write is not None:
            self.on_write(self.path)

    def started(self, run) -> None:
        self.data["runs"][run.label] = {"state": "running", "started": time.time()}
        self._flush()

    def ended(self, run, state: str, error: str | None = None) -> None:
        rec = self.data["runs"].setdefault(run.label, {"started": time.time()})
        rec.update(state=state, ended=time.time())
        if error:
            rec["error"] = error
        self._flush()

    def close(self) -> None:
        self.data["pid"] = None
        self._flush()


def driver_alive(status: dict) -> bool:
    pid = status.get("pid")
    if not pid or status.get("host") != socket.gethostname():
        return bool(pid)  # another host's driver: trust the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_wall_seconds(metrics: dict) -> float | None:
    """A finished run's wall time: measured end to end by its last process (else its data stages + its
    training's wall time, older runs), plus the epochs that earlier, interrupted processes trained: the
    history keeps every epoch's seconds across a resume, while the wall times cover the last process only.
    A run whose model was reused keeps its near-zero wall time (its history equals the reused training's)."""
    if "run_wall_seconds" not in metrics and "wall_seconds" not in metrics:
        return None
    train = float(metrics.get("wall_seconds", 0.0))
    wall = (float(metrics["run_wall_seconds"]) if "run_wall_seconds" in metrics
            else train + float(metrics.get("data_seconds", 0.0)))
    epochs = sum(float(h.get("seconds", 0.0)) for h in metrics.get("history", []))
    return wall + max(0.0, epochs - train)


def estimate(run, walls: dict) -> float | None:
    """Expected seconds of `run` from finished runs' (wall, data) seconds, `data` being the time before their
    training started (stages built or waited for): the mean of finished runs of the same (dataset, backbone,
    variant), else (dataset, variant), else (variant), else every finished run. The data part counts only
    while no finished run on the same dataset and data has built it (a second seed, or dr4sr+ after dr4sr,
    reuses it)."""
    from dr4sr.pipeline import PERSONALIZED

    def data(variant: str) -> str:  # dr4sr+ and constant re-weight the dr4sr data
        return PERSONALIZED.get(variant, (variant,))[0]

    keys = [lambda r: (r.dataset, r.backbone, r.variant), lambda r: (r.dataset, r.variant), lambda r: r.variant,
            lambda r: None]
    data_built = any(r.dataset == run.dataset and data(r.variant) == data(run.variant) for r in walls)
    for key in keys:
        same = [wd for r, wd in walls.items() if key(r) == key(run)]
        if same:
            train = sum(w - d for w, d in same) / len(same)
            return train + (0.0 if data_built else sum(d for _, d in same) / len(same))
    return None


def grid_status(out: Path, runs: list) -> dict:
    """Per planned run its state (finished, running, failed, interrupted, remaining) and wall seconds,
    and the ETA: remaining work over the slots, by the estimates above."""
    from dr4sr.search.grid import finished

    status = read_json(Path(out) / STATUS_NAME)
    alive = driver_alive(status)
    records = status.get("runs", {})
    now = time.time()
    rows, walls = [], {}
    for r in runs:
        rec = records.get(r.label, {})
        if finished(r.dir(out)):
            metrics = read_json(r.dir(out) / "metrics.json")
            wall = run_wall_seconds(metrics)
            rows.append((r, "finished", wall))
            if wall is not None:
                walls[r] = (wall, min(float(metrics.get("data_seconds", 0.0)), wall))
        elif rec.get("state") == "running" and alive:
            rows.append((r, "running", now - rec["started"]))
        elif rec.get("state") in ("failed", "running", "interrupted"):
            rows.append((r, "failed" if rec["state"] == "failed" else "interrupted", None))
        else:
            rows.append((r, "remaining", None))
    left = 0.0
    unknown = 0
    for r, state, wall in rows:
        if state == "finished":
            continue
        est = estimate(r, walls)
        if est is None:
            unknown += 1
        elif state == "running":
            left += max(est - wall, 0.0)
        else:
            left += est
    slots = status.get("slots") or 1
    return {"rows": rows, "alive": alive, "slots": slots, "eta_seconds": left / slots, "unestimated": unknown,
            "core_hours": sum(w for w, _ in walls.values()) / 3600}


RECORD_FILES = ("metrics.json", "user_metrics.parquet")


def export_records(out: Path, runs: list, dest: Path) -> list:
    """Copy what Table 3 needs of each finished run (metrics.json, user_metrics.parquet: no weights, no
    checkpoints) to `dest` in the grid's own layout, with grid.json and status.json. Copying `dest` back
    into a grid folder (or using it as `--out`) makes the grid skip those runs and rebuild the same table."""
    import shutil

    from dr4sr.search.grid import finished

    out, dest = Path(out), Path(dest)
    copied = []
    for r in runs:
        if not finished(r.dir(out)):
            continue
        target = r.dir(dest)
        target.mkdir(parents=True, exist_ok=True)
        for name in RECORD_FILES:
            atomic_write(target / name, lambda tmp, src=r.dir(out) / name: shutil.copyfile(src, tmp))
        copied.append(r)
    for name in ("grid.json", STATUS_NAME):
        if (out / name).is_file():
            shutil.copyfile(out / name, dest / name)
    return copied


def format_status(out: Path, runs: list) -> str:
    st = grid_status(out, runs)
    counts = {}
    lines = []
    for r, state, wall in st["rows"]:
        counts[state] = counts.get(state, 0) + 1
        lines.append(f"  {state:<11} {r.label:<40} " + (fmt_seconds(wall) if wall is not None else ""))
    head = (f"grid {out}: " + ", ".join(f"{counts[k]} {k}" for k in
                                         ("finished", "running", "interrupted", "failed", "remaining") if k in counts)
            + f" of {len(runs)}; driver {'running' if st['alive'] else 'not running'}")
    eta = (f"ETA {fmt_seconds(st['eta_seconds'])} with {st['slots']} run(s) at once, from the measured wall times"
           + (f" ({st['unestimated']} runs not estimated yet: no finished run of their kind)"
              if st["unestimated"] else "")
           + f"; finished runs took {st['core_hours']:.2f} run-hours")
    return "\n".join([head] + lines + [eta])
