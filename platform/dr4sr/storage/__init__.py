"""Where the artifact store lives: a local folder, or an object store (`s3://bucket/prefix`).

On an object store, artifacts are read through a per-node cache folder, so every existing reader keeps
getting local paths; `dr4sr.storage.s3` talks to the bucket, `dr4sr.storage.claim` keeps one builder
per artifact id across nodes.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_ENV = "DR4SR_CACHE"


def is_uri(spec: str | os.PathLike | None) -> bool:
    return isinstance(spec, str) and "://" in spec


def resolve_store(spec: str | os.PathLike | None) -> str | None:
    """The store as another process (another cwd, another node) must be told it: a URI as given, a local
    folder as an absolute path."""
    if spec is None:
        return None
    return str(spec) if is_uri(spec) else str(Path(spec).expanduser().resolve())


def cache_root(identity: str) -> Path:
    """This node's cache folder for one remote store: `$DR4SR_CACHE` (default ~/.cache/dr4sr/artifacts)
    / a hash of the store's identity, so two stores never share cached files."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dr4sr" / "artifacts").expanduser()
    return base / hashlib.sha256(identity.encode()).hexdigest()[:16]
