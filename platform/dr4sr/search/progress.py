"""Progress lines with an ETA for long jobs: a study's trials (a Tune callback) and a grid's runs."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ray.tune import Callback


def fmt_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Eta:
    """Done/total counter whose ETA is the mean time per item finished here times the items left;
    `done` counts items finished before (a resumed study), which the rate leaves out."""

    def __init__(self, total: int, label: str, done: int = 0):
        self.total, self.label, self.done, self._first = max(total, 1), label, done, done
        self.started = time.time()

    def step(self, what: str) -> str:
        self.done += 1
        elapsed = time.time() - self.started
        left = max(self.total - self.done, 0) * elapsed / (self.done - self._first)
        line = (f"[{self.label}] {self.done}/{self.total} {what} | elapsed {fmt_seconds(elapsed)} | "
                f"ETA {fmt_seconds(left)}")
        print(line, flush=True)
        return line


def point_text(config: dict) -> str:
    from dr4sr.search.results import fmt_value
    from dr4sr.search.trial import STUDY_KEY

    return ", ".join(f"{k}={fmt_value(v)}" for k, v in config.items() if k != STUDY_KEY)


class StudyProgress(Callback):
    """One line per trial that Tune ends (completed, stopped by ASHA, or failed): its point, validation
    objective, epochs and the study's ETA. It also leaves `trials/<id>/ended.json`, which tells
    `dr4sr.search.results` an ASHA stop from a trial cut off by an interrupt (Tune ends both alike)."""

    def __init__(self, total: int, objective: str = "", out: str = ""):
        self.total, self.objective, self.out = total, objective, out
        self._eta = None

    def setup(self, **info):
        from dr4sr.search.results import ENDED

        # at every (re)start of the experiment; trials ended in an earlier run count as done
        before = len(list(Path(self.out).glob(f"trials/*/{ENDED}"))) if self.out else 0
        self._eta = Eta(self.total, "study", done=before)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "completed")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "error")

    def _line(self, trial, how: str) -> None:
        from dr4sr.search.results import ENDED, read_progress

        if self._eta is None:
            self._eta = Eta(self.total, "study")
        trial_dir = Path(self.out) / "trials" / trial.trial_id
        value, epochs = "-", (trial.last_result or {}).get("epoch", "?")
        if trial_dir.is_dir():
            (trial_dir / ENDED).write_text(json.dumps({"status": how}))
            metrics_path = trial_dir / "run" / "metrics.json"
            if metrics_path.is_file():
                m = json.loads(metrics_path.read_text())
                status, epochs = "finished", m["epochs"]
                value = m["valid"].get(self.objective.removeprefix("valid_"), "-")
            else:
                progress = read_progress(trial_dir)
                status = "FAILED" if how == "error" else "stopped by ASHA"
                epochs = len(progress)
                value = max((r.get(self.objective, -1.0) for r in progress), default="-")
        else:  # failed before it wrote anything
            status = "FAILED" if how == "error" else "ended"
        if how == "error":
            status += f" (see {Path(self.out) / 'tune' / trial.trial_id / 'error.txt'})"
        value = f"{value:.4f}" if isinstance(value, float) else value
        self._eta.step(f"{trial.trial_id} {status}: {point_text(trial.config)} | {self.objective} {value} | "
                       f"{epochs} epochs")
