"""Moving whole artifacts between a remote root and local folders: publish (upload, manifest last) and
fetch (download into the node's cache, every file checked against the manifest before it is trusted)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from dr4sr.storage.s3 import S3Root

MANIFEST = "manifest.json"


def publish(root: S3Root, folder: Path, rel: str, before_manifest: Callable[[], None] = lambda: None) -> None:
    """Upload the finished artifact `folder` (its manifest already written) to `rel`. An older copy there
    (damaged, or a crash's leftover) loses its manifest first; the new manifest goes up last, after
    `before_manifest()` (the claim's last check), so readers never trust a half-uploaded artifact."""
    root.delete_dir(rel, first=MANIFEST)
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            root.upload(path, f"{rel}/{path.relative_to(folder).as_posix()}")
    before_manifest()
    root.upload(folder / MANIFEST, f"{rel}/{MANIFEST}")


def fetch(root: S3Root, rel: str, raw_manifest: bytes, dest: Path) -> str | None:
    """Download the artifact at `rel` whose manifest is `raw_manifest` into `dest` (absent or replaced).
    Returns why it cannot be trusted (nothing is left at `dest` then), or None. The download goes to a
    temporary folder renamed into place with its manifest written last, like a local commit."""
    from dr4sr.artifacts import _compare

    try:
        manifest = json.loads(raw_manifest)
        files = manifest.get("files")
    except (UnicodeDecodeError, ValueError, AttributeError) as exc:
        return f"{MANIFEST} unreadable ({exc.__class__.__name__})"
    if files is None:  # written before manifests listed their files: take what is there
        files = {name: None for name in root.list_files(rel) if name != MANIFEST}
    tmp = dest.with_name(f".fetch-{dest.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, rec in files.items():
            try:
                size, sha = root.download(f"{rel}/{name}", tmp / name)
            except FileNotFoundError:
                return f"{name} is missing"
            problem = rec and _compare(name, rec, size, lambda: sha)
            if problem:
                return problem
        (tmp / MANIFEST).write_bytes(raw_manifest)
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_remote(root: S3Root, rel: str, full: bool = True) -> str | None:
    """check_files for an artifact in the bucket (`dr4sr store verify`): streams every file to hash it."""
    from dr4sr.artifacts import check_files

    def read_manifest() -> str:
        raw = root.read_bytes(f"{rel}/{MANIFEST}")
        if raw is None:
            raise FileNotFoundError(MANIFEST)
        return raw.decode()

    return check_files(read_manifest, lambda n: root.size(f"{rel}/{n}"), lambda n: root.sha256(f"{rel}/{n}"), full)
