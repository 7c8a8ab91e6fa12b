"""Content-addressed artifact store.

An artifact is a directory `<root>/<stage>/<id>/` with data files and `manifest.json`. Its id hashes
(stage, config, input ids, format version), so a sweep that varies only a later stage's settings
reuses earlier artifacts. Writes go to a temporary directory renamed into place when complete:
a crash never leaves a half artifact that a later run would trust.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from dr4sr import __version__

FORMAT_VERSION = 1
DEFAULT_ROOT_ENV = "DR4SR_ARTIFACTS"


def default_root() -> Path:
    return Path(os.environ.get(DEFAULT_ROOT_ENV, "artifacts")).expanduser()


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _canonical(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return obj


def artifact_id(stage: str, config: Any, inputs: dict[str, str] | None = None) -> str:
    payload = json.dumps({"stage": stage, "config": _canonical(config), "inputs": _canonical(inputs or {}),
                          "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Artifact:
    stage: str
    id: str
    path: Path

    @property
    def manifest(self) -> dict:
        return json.loads((self.path / "manifest.json").read_text())


class ArtifactStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_root()

    def path(self, stage: str, aid: str) -> Path:
        return self.root / stage / aid

    def get(self, stage: str, aid: str) -> Artifact | None:
        p = self.path(stage, aid)
        if (p / "manifest.json").exists():
            return Artifact(stage, aid, p)
        return None

    @contextlib.contextmanager
    def create(self, stage: str, config: Any, inputs: dict[str, str] | None = None,
               extra: dict | None = None) -> Iterator["ArtifactWriter"]:
        """Yield a writer whose `dir` is a temp folder; on success it becomes the artifact."""
        aid = artifact_id(stage, config, inputs)
        final = self.path(stage, aid)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{aid}-", dir=final.parent))
        writer = ArtifactWriter(stage, aid, tmp, dict(extra or {}))
        started = time.time()
        try:
            yield writer
            manifest = {
                "stage": stage, "id": aid, "config": _canonical(config), "inputs": _canonical(inputs or {}),
                "code_version": __version__, "format": FORMAT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.time() - started, 3), **_canonical(writer.info),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            try:
                os.rename(tmp, final)
            except OSError:
                # another process finished the same artifact first: identical content, keep theirs
                if not (final / "manifest.json").exists():
                    stale = final.with_name(f".stale-{aid}-{uuid.uuid4().hex[:8]}")
                    os.rename(final, stale)
                    os.rename(tmp, final)
                    shutil.rmtree(stale, ignore_errors=True)
            writer.artifact = Artifact(stage, aid, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass
class ArtifactWriter:
    stage: str
    id: str
    dir: Path
    info: dict
    artifact: Artifact | None = None
