"""Progress lines with an ETA for long jobs: a study's trials (a Tune callback) and a grid's runs."""
from __future__ import annotations

import time

from ray.tune import Callback


def fmt_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Eta:
    """Done/total counter whose ETA is the mean time per finished item times the items left."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = max(total, 1), label, 0
        self.started = time.time()

    def step(self, what: str) -> str:
        self.done += 1
        elapsed = time.time() - self.started
        left = (self.total - self.done) * elapsed / self.done
        line = (f"[{self.label}] {self.done}/{self.total} {what} | elapsed {fmt_seconds(elapsed)} | "
                f"ETA {fmt_seconds(left)}")
        print(line, flush=True)
        return line


class StudyProgress(Callback):
    """Prints one line per finished trial (completed, stopped by ASHA, or failed) with the study's ETA."""

    def __init__(self, total: int):
        self.total = total
        self._eta = None

    def setup(self, **info):
        self._eta = Eta(self.total, "study")  # at every (re)start of the experiment

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trial, "done")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "FAILED")

    def _line(self, trial, status: str) -> None:
        if self._eta is None:
            self._eta = Eta(self.total, "study")
        last = trial.last_result or {}
        self._eta.step(f"trials ({trial.trial_id} {status} after {last.get('epoch', '?')} epochs)")
