"""An artifact store root on S3 (or any S3-compatible server), through pyarrow.fs.

The endpoint comes from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (pyarrow ignores them itself) or the
URI's `?endpoint_override=`; the region from `AWS_REGION` / `AWS_DEFAULT_REGION` or `?region=`.
Credentials come from the usual AWS chain (env vars, profile, instance role) inside pyarrow and boto3:
this module never reads, stores or prints them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dr4sr.errors import ConfigError

CHUNK = 8 << 20


class S3Root:
    """`s3://bucket/prefix`: relative names such as `mine/<id>/manifest.json` live under the prefix."""

    def __init__(self, uri: str):
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError(f"artifact store {uri!r}: expected s3://bucket/prefix or a local folder")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint = (query.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3")
                         or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._fs = self._client = None

    @property
    def identity(self) -> str:
        """What makes two roots the same store (the cache folder is keyed by it)."""
        return f"{self.endpoint or 'aws'}|{self.uri}"

    def __getstate__(self) -> dict:  # clients are rebuilt in the process that unpickles
        return {**self.__dict__, "_fs": None, "_client": None}

    @property
    def fs(self):
        if self._fs is None:
            from pyarrow import fs

            region = self.region
            if region is None and self.endpoint is None:
                try:
                    region = fs.resolve_s3_region(self.bucket)
                except OSError:
                    region = None
            kwargs = {"region": region or "us-east-1"}
            if self.endpoint:
                kwargs["endpoint_override"] = self.endpoint
                kwargs["scheme"] = "http" if self.endpoint.startswith("http://") else "https"
            self._fs = fs.S3FileSystem(**kwargs)
        return self._fs

    @property
    def client(self):
        """boto3, for what pyarrow cannot do: conditional puts (the builder's claim)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region or "us-east-1")
        return self._client

    def key(self, rel: str) -> str:
        """The object key (no bucket) of a relative name."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _path(self, rel: str) -> str:
        return f"{self.bucket}/{self.key(rel)}".rstrip("/")

    def read_bytes(self, rel: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            with self.fs.open_input_stream(self._path(rel)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def size(self, rel: str) -> int:
        from pyarrow import fs

        info = self.fs.get_file_info(self._path(rel))
        if info.type != fs.FileType.File:
            raise FileNotFoundError(rel)
        return info.size

    def sha256(self, rel: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open_input_stream(self._path(rel)) as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def require_bucket(self) -> None:
        """FileNotFoundError naming the bucket when it does not exist (listings would just come back empty)."""
        from pyarrow import fs

        if self.fs.get_file_info(self.bucket).type == fs.FileType.NotFound:
            raise FileNotFoundError(f"bucket {self.bucket!r} does not exist")

    def list_dirs(self, rel: str = "") -> list[str]:
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self._path(rel), allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == fs.FileType.Directory)

    def list_files(self, rel: str) -> dict[str, int]:
        """{name relative to `rel`: size} of every object under `rel`."""
        from pyarrow import fs

        base = self._path(rel)
        infos = self.fs.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
        return {i.path[len(base) + 1:]: i.size for i in infos if i.type == fs.FileType.File}

    def upload(self, local: Path, rel: str) -> None:
        with open(local, "rb") as src, self.fs.open_output_stream(self._path(rel)) as dst:
            shutil.copyfileobj(src, dst, CHUNK)

    def download(self, rel: str, local: Path) -> tuple[int, str]:
        """Copy one object to `local`; its (size, SHA-256) as received. FileNotFoundError when absent."""
        local.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with self.fs.open_input_stream(self._path(rel)) as src, open(local, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                dst.write(chunk)
        return size, digest.hexdigest()

    def delete_dir(self, rel: str, first: str) -> None:
        """Remove everything under `rel`, the object `first` (the manifest) before the rest: a reader never
        trusts what is left half deleted. boto3, because pyarrow leaves empty directory markers behind."""
        c, base = self.client, self.key(rel) + "/"
        c.delete_object(Bucket=self.bucket, Key=base + first)
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                c.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
