"""Progress display for training loops: a batch bar per epoch and one summary line per epoch with an
honest ETA, and `StageClock` for one line per pipeline stage.

The ETA follows the early-stopping rule: if the best epoch does not improve, training stops after
`patience - (epoch - best_epoch)` more epochs; that times the measured epoch time is the soonest end.
The max-epoch bound is the latest. Both are printed, since the real end lies between them.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
RECENT_EPOCHS = 5  # epoch time = mean of the last few epochs (the first ones warm caches up)


def epochs_left(epoch: int, best_epoch: int, patience: int | None, max_epochs: int) -> tuple[int, int]:
    """(epochs left if the best does not improve, epochs left at the max-epoch bound) after `epoch`."""
    at_bound = max(max_epochs - epoch - 1, 0)
    if patience is None:
        return at_bound, at_bound
    return min(max(patience - (epoch - best_epoch), 0), at_bound), at_bound


def eta_text(epoch: int, best_epoch: int, patience: int | None, max_epochs: int, seconds_per_epoch: float) -> str:
    soon, late = epochs_left(epoch, best_epoch, patience, max_epochs)
    if late == 0:
        return "last epoch"
    if soon == 0:
        return f"stops now: no new best in {patience} epochs"
    if soon == late:
        return f"{late} epoch{'s' if late > 1 else ''} left (~{fmt_seconds(late * seconds_per_epoch)})"
    return (f"stops in {soon} epoch{'s' if soon > 1 else ''} (~{fmt_seconds(soon * seconds_per_epoch)}) "
            f"without a new best, "
            f"<= {fmt_seconds(late * seconds_per_epoch)} at the {max_epochs}-epoch bound")


class EpochProgress:
    def __init__(self, max_epochs: int, batches_per_epoch: int, enabled: bool = True, stream=None,
                 patience: int | None = None, start_epoch: int = 0):
        self.max_epochs, self.batches_per_epoch, self.enabled = max_epochs, batches_per_epoch, enabled
        self.patience, self.start_epoch = patience, start_epoch
        self.stream = stream or sys.stderr
        self._bar = None
        self._seconds: list[float] = []

    def batches(self, epoch: int, it: Iterable[T]) -> Iterator[T]:
        if not self.enabled:
            yield from it
            return
        self._bar = tqdm(it, total=self.batches_per_epoch, desc=f"epoch {epoch}", leave=False,
                         file=self.stream, mininterval=1.0, dynamic_ncols=True,
                         disable=not self.stream.isatty())
        yield from self._bar

    def set_loss(self, loss: float) -> None:
        if self._bar is not None and not self._bar.disable:
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, record: dict, metric: str, best: float) -> None:
        """The target-model line: loss, validation metric and best so far, epoch time, ETA."""
        self.line(record["epoch"], record["best_epoch"], record["seconds"],
                  f"epoch {record['epoch']:4d} | loss {record['loss']:.4f} | valid {metric} "
                  f"{record['valid_' + metric]:.4f} (best {best:.4f} @ {record['best_epoch']})")

    def line(self, epoch: int, best_epoch: int, seconds: float, body: str) -> None:
        self._seconds.append(seconds)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self.enabled:
            return
        recent = self._seconds[-RECENT_EPOCHS:]
        eta = eta_text(epoch, best_epoch, self.patience, self.max_epochs, sum(recent) / len(recent))
        # a plain write: Ray Train's patched print() would also copy the line into its logger (printed twice)
        self.stream.write(f"{body} | {seconds:.1f}s | {eta}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class StageClock:
    """One line when a pipeline stage starts and one when it ends: `[2/5] pretrain: done in 3m10s (total 5m02s)`."""

    def __init__(self, total: int, log: Callable[[str], None] = print):
        self.total, self.log = total, log
        self._started = time.perf_counter()
        self._stage_started: dict[int, float] = {}

    def start(self, index: int, name: str, note: str = "") -> None:
        self._stage_started[index] = time.perf_counter()
        self.log(f"[{index}/{self.total}] {name}{' (' + note + ')' if note else ''} ...")

    def finish(self, index: int, name: str, how: str = "done") -> None:
        now = time.perf_counter()
        took = now - self._stage_started.get(index, now)
        self.log(f"[{index}/{self.total}] {name}: {how} in {fmt_seconds(took)} "
                 f"(total {fmt_seconds(now - self._started)})")

    def elapsed(self) -> float:
        return time.perf_counter() - self._started


def fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
