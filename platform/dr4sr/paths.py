"""Output locations: checked for writability before any work, and smoke-test outputs kept apart."""
from __future__ import annotations

import os
from pathlib import Path

from dr4sr.errors import DR4SRError

SMOKE_SUFFIX = "-smoke"


def require_writable(path: str | Path, what: str, hint: str = "") -> Path:
    """Fail now, with one line, if `path` could not be created or written later; creates nothing.

    The deepest existing ancestor must be a directory this process may write into (os.access also
    answers for read-only file systems, and for root)."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    reason = None
    if probe.exists() and not probe.is_dir():
        reason = f"{probe} is a file, not a directory"
    elif not os.access(probe, os.W_OK | os.X_OK):
        reason = f"no permission to write in {probe}" if probe != path else "no permission to write in it"
    if reason is not None:
        raise DR4SRError(f"{what} {path} is not writable: {reason}{'; ' + hint if hint else ''}")
    return path


def smoke_out(out: str | Path, smoke_test: bool) -> Path:
    """`runs/x` -> `runs/x-smoke` for a smoke test, so its numbers never land where a real run's do."""
    out = Path(out)
    if not smoke_test or out.name.endswith(SMOKE_SUFFIX):
        return out
    return out.with_name(out.name + SMOKE_SUFFIX)


def smoke_label(max_epochs: int) -> str:
    return f"smoke test ({max_epochs} epochs): not a result"
