"""Output locations: checked for writability before any work, and smoke-test outputs kept apart."""
from __future__ import annotations

import os
from pathlib import Path

from dr4sr.errors import DR4SRError

SMOKE_SUFFIX = "-smoke"


def atomic_write(final: str | Path, write) -> Path:
    """`write(tmp_path)` into a temp file beside `final`, then one rename: readers see the old file or the
    whole new one, never half of it (a crash leaves no temp file behind either)."""
    import tempfile

    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return final


def atomic_write_text(final: str | Path, text: str) -> Path:
    return atomic_write(final, lambda tmp: Path(tmp).write_text(text))


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
    hint = f"; {hint}" if hint else ""
    if probe == path and path.exists() and not path.is_dir():
        raise DR4SRError(f"{what} {path} is a file, not a folder; give a folder{hint}")
    reason = None
    if probe.exists() and not probe.is_dir():
        reason = f"{probe} is a file, not a directory"
    elif not os.access(probe, os.W_OK | os.X_OK):
        reason = f"no permission to write in {probe}" if probe != path else "no permission to write in it"
    if reason is not None:
        raise DR4SRError(f"{what} {path} is not writable: {reason}{hint}")
    return path


def require_folders(**flags: str | Path | None) -> None:
    """Folder arguments (`out=`, `store=`...): each a folder this process can create or write, never
    a file. Run first, so a typo such as `--out README.md` stops before any work. A URI (an s3:// store)
    is not a local path: its own client checks it."""
    from dr4sr.storage import is_uri

    for name, path in flags.items():
        if path is not None and not is_uri(str(path)):
            require_writable(path, f"--{name.replace('_', '-')}")


def require_file_target(path: str | Path, what: str) -> Path:
    """An output-file argument (--json, a figure): not a folder, and its folder writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DR4SRError(f"{what} {path} is a folder; give a file name")
    require_writable(path.parent, f"{what} {path}: its folder")
    return path


def smoke_out(out: str | Path, smoke_test: bool) -> Path:
    """`runs/x` -> `runs/x-smoke` for a smoke test, so its numbers never land where a real run's do.

    `out` itself is checked first: a file given as --out must stop, not gain a `-smoke` folder beside it."""
    out = require_writable(out, "--out")
    if not smoke_test or out.name.endswith(SMOKE_SUFFIX):
        return out
    return require_writable(out.with_name(out.name + SMOKE_SUFFIX), "--out (smoke test)")


def smoke_label(max_epochs: int | None = None) -> str:
    epochs = f" ({max_epochs} epochs)" if max_epochs else ""
    return f"smoke test{epochs}: not a result"
