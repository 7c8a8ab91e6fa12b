"""An output folder (`--out` of a study or the grid) that is a local folder or `s3://bucket/prefix`.

On S3 every command works in a local working copy (this node's cache folder for that URI, the same path
on every node of a cluster built from one image), synced with the bucket: `pull` brings the bucket's
files down, `push` sends the local ones up. A file counts as the same when its size and MD5 agree (the
ETag of a single-part upload, or the `md5` metadata this module attaches), so syncing keeps no state and
any node may pick up where another left off. The bucket is the record; the working copy is a cache.
Whoever writes a file pushes it: the driver its own files, a trial or run its own folder.
Credentials come from the usual AWS chain (dr4sr.storage.s3); nothing here writes or prints them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from dr4sr.storage import cache_root, is_uri

Skip = Callable[[str], bool]  # (path relative to the folder) -> leave it out of the sync


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


class OutFolder:
    """`spec` as given on the command line: `local` is where the code reads and writes, `remote` (an
    S3Root, or None for a local folder, whose pull/push do nothing) what it is synced with."""

    def __init__(self, spec: str | Path):
        self.remote = None
        if is_uri(str(spec)):
            from dr4sr.storage.s3 import S3Root

            self.remote = S3Root(str(spec))
            self.uri = self.remote.uri
            self.local = cache_root(f"out|{self.remote.identity}") / "out"
        else:
            self.local = Path(spec).expanduser()
            self.uri = str(self.local)

    def __str__(self) -> str:
        return self.uri

    def _remote_files(self, rel: str) -> dict[str, tuple[int, str]]:
        """{path relative to the folder: (size, ETag)} of every object at or under `rel`."""
        from botocore.exceptions import BotoCoreError, ClientError

        root = self.remote
        cut = len(root.key("")) if root.prefix else 0
        out = {}
        try:
            for page in root.client.get_paginator("list_objects_v2").paginate(Bucket=root.bucket,
                                                                              Prefix=root.key(rel)):
                for o in page.get("Contents", []):
                    name = o["Key"][cut:]
                    if name and not name.endswith("/") and (not rel or name == rel or name.startswith(rel + "/")):
                        out[name] = (o["Size"], o["ETag"].strip('"'))
        except (ClientError, BotoCoreError) as exc:  # no such bucket, no permission, no endpoint: one line
            from dr4sr.errors import ConfigError

            raise ConfigError(f"--out {self.uri}: cannot list it ({exc})") from None
        return out

    def _same(self, rel: str, path: Path, size: int, etag: str) -> bool:
        if not path.is_file() or path.stat().st_size != size:
            return False
        local = _md5(path)
        if etag == local:
            return True
        head = self.remote.client.head_object(Bucket=self.remote.bucket, Key=self.remote.key(rel))
        return head.get("Metadata", {}).get("md5") == local  # an ETag that is not the MD5 (SSE-KMS)

    def pull(self, rel: str = "", skip: Skip = lambda rel: False, delete: bool = False) -> int:
        """Download what under `rel` differs from the working copy; returns how many files came down. With
        `delete`, also remove working-copy files the bucket does not have (e.g. a folder deleted from the
        bucket to start over): only when no other process on this node writes the folder."""
        if self.remote is None:
            return 0
        n = 0
        remote = self._remote_files(rel)
        base = self.local / rel if rel else self.local
        if delete and base.is_dir():
            for path in sorted(base.rglob("*")):
                name = path.relative_to(self.local).as_posix()
                if path.is_file() and name not in remote and not skip(name):
                    path.unlink()
        for name, (size, etag) in remote.items():
            path = self.local / name
            if skip(name) or self._same(name, path, size, etag):
                continue
            tmp = path.with_name(f".{path.name}.pull")
            self.remote.download(name, tmp)
            tmp.replace(path)  # readers see the old file or the new one
            n += 1
        return n

    def push(self, rel: str = "", skip: Skip = lambda rel: False, delete: bool = False,
             recursive: bool = True) -> int:
        """Upload what under `rel` (a folder or one file) differs in the bucket; with `delete`, also remove
        objects under `rel` that the working copy no longer has (for a folder one writer owns)."""
        if self.remote is None:
            return 0
        base = self.local / rel if rel else self.local
        if base.is_file():
            files = [base]
        elif not base.is_dir():
            files = []
        else:
            files = sorted(p for p in (base.rglob("*") if recursive else base.iterdir()) if p.is_file())
        remote = self._remote_files(rel)
        n = 0
        for path in files:
            name = path.relative_to(self.local).as_posix()
            if skip(name) or path.name.endswith(".pull"):  # a download in progress
                continue
            if name in remote and self._same(name, path, *remote[name]):
                continue
            with open(path, "rb") as f:
                self.remote.client.put_object(Bucket=self.remote.bucket, Key=self.remote.key(name), Body=f,
                                              Metadata={"md5": _md5(path)})
            n += 1
        if delete and base.is_dir():
            gone = [k for k in remote if not skip(k) and not (self.local / k).is_file()]
            for k in gone:
                self.remote.client.delete_object(Bucket=self.remote.bucket, Key=self.remote.key(k))
        return n

    def sync_note(self) -> str | None:
        """The line that tells a user where the working copy of a remote folder is."""
        if self.remote is None:
            return None
        return f"working copy of {self.uri}: {self.local} (synced to the bucket)"


def pulled(spec: str | Path, skip: Skip = lambda rel: False) -> OutFolder:
    """The folder with its working copy brought up to date (nothing to do for a local folder)."""
    folder = OutFolder(spec)
    folder.pull(skip=skip)
    return folder
