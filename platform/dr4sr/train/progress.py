"""Progress display for training: a batch bar per epoch (loss, ETA) and one summary line per epoch."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class EpochProgress:
    def __init__(self, max_epochs: int, batches_per_epoch: int, enabled: bool = True, stream=None):
        self.max_epochs, self.batches_per_epoch, self.enabled = max_epochs, batches_per_epoch, enabled
        self.stream = stream or sys.stderr
        self._bar = None
        self._started = time.perf_counter()
        self._epochs_done = 0

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
        self._epochs_done += 1
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._started
        per_epoch = elapsed / self._epochs_done
        remaining = (self.max_epochs - record["epoch"] - 1) * per_epoch
        print(f"epoch {record['epoch']:4d} | loss {record['loss']:.4f} | valid {metric} "
              f"{record['valid_' + metric]:.4f} (best {best:.4f} @ {record['best_epoch']}) | "
              f"{record['seconds']:.1f}s | ETA <= {_fmt(remaining)} (early stopping usually sooner)",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
