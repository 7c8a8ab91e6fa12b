"""How a study stops: SIGINT and SIGTERM ask Ray Tune to save its state and end its loop (a second signal
stops at once), the exceptions that carry the partial summary and the exit code (130 / 143) to the
command line, and study.json's record of the interruption."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path

from dr4sr.errors import Terminated

RESUME_HINT = "rerun with --resume to continue"


@contextlib.contextmanager
def env_vars(**values: str | None):
    """Set (or with None, leave) environment variables for the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class StudyInterrupted(KeyboardInterrupt):
    """A study stopped by SIGINT after Tune saved its state; `line` says how far it got."""
    exit_code = 130

    def __init__(self, line: str, summary: dict):
        super().__init__(line)
        self.line, self.summary = line, summary


class StudyTerminated(StudyInterrupted, Terminated):
    exit_code = 143


class GracefulStop:
    """SIGINT and SIGTERM during a study: the first asks Tune to end its loop and save its state (Tune's
    SIGUSR1 handler, the path of its own Ctrl-C handling), a second one stops at once. Tune's SIGINT
    handler stays off, so that SIGTERM (`ray job stop`, kill) stops as cleanly and the signal is known."""

    def __init__(self):
        self.signum: int | None = None
        self._saved: dict = {}
        self._deferred = False  # while Ray starts: record the first signal, raise it afterwards in check()

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers; Tune then sets none either
        self._env = env_vars(TUNE_DISABLE_SIGINT_HANDLER="1")
        self._env.__enter__()
        self._saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
        self.rearm()
        return self

    def rearm(self) -> None:
        """(Again) after ray.init(), whose C++ core installs a SIGTERM handler that aborts the driver."""
        if self._saved:
            signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)

    @contextlib.contextmanager
    def kept_during_ray_init(self):
        """ray.init() replaces the SIGTERM handler with one that raises SystemExit, and code inside it can
        swallow that exception (the signal was then lost and the study ran on) or print it as "Exception
        ignored" (raised inside an at-fork hook). Ours stays installed and only records a first signal
        while Ray starts; `check()` raises it once ray.init() returned. A second signal raises at once."""
        import ray._private.utils as ray_utils  # where ray.init() installs its handler (Ray 2.60)

        original = getattr(ray_utils, "set_sigterm_handler", None)
        if not self._saved or original is None:
            yield
            return
        ray_utils.set_sigterm_handler = lambda handler: None
        self._deferred = True
        try:
            yield
        finally:
            ray_utils.set_sigterm_handler = original
            self._deferred = False

    def check(self) -> None:
        """Raise for a signal whose exception was swallowed (raised inside an at-fork hook or a finalizer,
        as happens while ray.init() starts its processes)."""
        if self.signum is not None:
            raise Terminated() if self.signum == signal.SIGTERM else KeyboardInterrupt()

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if first and self._deferred:
            return
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if first and callable(tune_stop) and tune_stop is not self._saved.get(signal.SIGUSR1):
            tune_stop(signum, frame)  # installed by tuner.fit(): its loop ends after the current step
            return
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def __exit__(self, *exc) -> None:
        if not self._saved:
            return
        for s, handler in self._saved.items():
            signal.signal(s, handler)
        self._env.__exit__(None, None, None)


def record_interrupt(out: Path, signum: int | None) -> None:
    """study.json says whether the last run was interrupted (results.csv and `dr4sr report` repeat it)."""
    path = out / "study.json"
    if not path.is_file():
        return
    info = json.loads(path.read_text())
    info.pop("interrupted", None)
    if signum is not None:
        info["interrupted"] = signal.Signals(signum).name
    path.write_text(json.dumps(info, indent=2, default=str))
