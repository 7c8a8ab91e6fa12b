"""Content-addressed artifact store.

An artifact is a directory `<root>/<stage>/<id>/` with data files and `manifest.json`. Its id hashes
(stage, config, input ids, format version), so a sweep that varies only a later stage's settings
reuses earlier artifacts. Writes go to a staging directory renamed into place when complete:
a crash never leaves a half artifact that a later run would trust. One process at a time builds an
id (a file lock per id); others wait and reuse it. The staging directory is the same for every build
of an id, so a killed build is resumed (training keeps its checkpoints there) or cleared, never piled up.
The manifest lists every file with its size and SHA-256: a lookup checks the sizes (and the hashes of
small files), so a truncated, missing or unreadable file makes the artifact count as absent (rebuilt,
with one line naming it); `dr4sr store verify` checks every hash.

The root is a local folder or `s3://bucket/prefix` (dr4sr.storage). On S3, builds still stage in a local
folder; a commit uploads the files and the manifest last, and readers download an artifact once into
this node's cache folder (checked against every size and hash), so `Artifact.path` is always local.
One builder per id: the file lock per id on this node, plus a leased claim object in the bucket. A
resumable build also saves its checkpoints to the bucket's staging area (`ArtifactWriter.save_progress`),
so the next builder of the id resumes from them on any node.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from dr4sr import __version__
from dr4sr.storage import cache_root, is_uri

FORMAT_VERSION = 1
DEFAULT_ROOT_ENV = "DR4SR_ARTIFACTS"
STAGING_PREFIX = ".staging-"
LOCK_DIR = ".locks"
MANIFEST = "manifest.json"
HASH_ON_LOOKUP = 16 << 20  # files up to this size are also hashed on lookup; larger ones by `store verify`
Log = Callable[[str], None]


def _warn(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_table(folder: Path) -> dict[str, dict]:
    """{relative path: {size, sha256}} of every file under `folder` but the manifest."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            out[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return out


def check_files(read_manifest: Callable[[], str], size_of: Callable[[str], int], sha_of: Callable[[str], str],
                full: bool = False) -> str | None:
    """Why an artifact cannot be trusted, or None. Sizes always; hashes of small files, or of every file
    with `full`. Artifacts written before manifests listed their files are checked for the manifest only."""
    try:
        manifest = json.loads(read_manifest())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{MANIFEST} unreadable ({exc.__class__.__name__})"
    if not isinstance(manifest, dict):
        return f"{MANIFEST} is not a JSON object"
    for name, rec in (manifest.get("files") or {}).items():
        try:
            size = size_of(name)
        except OSError:
            return f"{name} is missing"
        problem = _compare(name, rec, size, lambda: sha_of(name) if (full or size <= HASH_ON_LOOKUP) else None)
        if problem:
            return problem
    return None


def _compare(name: str, rec: dict, size: int, sha: Callable[[], str | None]) -> str | None:
    if size != rec["size"]:
        return f"{name} has {size:,} bytes, the manifest says {rec['size']:,}"
    digest = sha()
    if digest is not None and digest != rec["sha256"]:
        return f"{name} does not match its SHA-256 in the manifest"
    return None


def check_artifact(path: Path, full: bool = False) -> str | None:
    """check_files for a local artifact folder."""
    return check_files(lambda: (path / MANIFEST).read_text(), lambda n: (path / n).stat().st_size,
                       lambda n: file_sha256(path / n), full)


def default_root() -> Path | str:
    """$DR4SR_ARTIFACTS or ./artifacts: a local folder, or an object-store URI kept as given."""
    spec = os.environ.get(DEFAULT_ROOT_ENV) or "artifacts"
    return spec if is_uri(spec) else Path(spec).expanduser()


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
    """`root` (or $DR4SR_ARTIFACTS): a local folder, or `s3://bucket/prefix`. `self.root` is always local:
    the store itself, or for a remote store this node's cache and staging folder; `self.uri` is what to
    hand to another process or node."""

    def __init__(self, root: str | Path | None = None):
        spec = root if root is not None else default_root()
        self.remote = None
        if is_uri(spec):
            from dr4sr.storage.s3 import S3Root

            self.remote = S3Root(str(spec))
            self.uri = self.remote.uri
            self.root = cache_root(self.remote.identity)
        else:
            self.root = Path(spec).expanduser()
            self.uri = str(self.root)
        self._checked: dict[tuple, str | None] = {}  # (path, manifest mtime) -> problem: check once per process
        self._remote_bad: dict[tuple, bytes] = {}  # (stage, id) -> manifest of a damaged remote copy

    def path(self, stage: str, aid: str) -> Path:
        """The artifact's local folder. For a remote store a finished artifact is fetched into the cache."""
        p = self.root / stage / aid
        if self.remote is not None and not (p / MANIFEST).exists():
            self.get(stage, aid)
        return p

    def staging_path(self, stage: str, aid: str) -> Path:
        """Where the holder of `aid`'s lock builds it: stable per id, so a killed build can be resumed."""
        return self.root / stage / f"{STAGING_PREFIX}{aid}"

    def get(self, stage: str, aid: str) -> Artifact | None:
        """The finished artifact, or None: absent, or damaged (then it is rebuilt by the next build)."""
        p = self.root / stage / aid
        if self._check_local(p, stage, aid) is None:
            return Artifact(stage, aid, p)
        return None if self.remote is None else self._fetch(stage, aid)

    def _check_local(self, p: Path, stage: str, aid: str) -> str | None:
        try:
            key = (str(p), (p / MANIFEST).stat().st_mtime_ns)
        except OSError:
            return "absent"
        if key not in self._checked:
            self._checked[key] = problem = check_artifact(p)
            if problem:
                then = "it will be rebuilt" if self.remote is None else "fetching it again"
                _warn(f"artifact {stage} {aid} at {p} is damaged: {problem}; {then}")
        return self._checked[key]

    def _fetch(self, stage: str, aid: str) -> Artifact | None:
        """Download a finished remote artifact into this node's cache, once per node (a file lock per id)."""
        from filelock import FileLock

        from dr4sr.storage.mirror import fetch

        raw = self.remote.read_bytes(f"{stage}/{aid}/{MANIFEST}")
        if raw is None or self._remote_bad.get((stage, aid)) == raw:
            return None
        dest = self.root / stage / aid
        (self.root / LOCK_DIR).mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / LOCK_DIR / f"{stage}-{aid}.fetch.lock"), thread_local=False):
            if self._check_local(dest, stage, aid) is None:  # another process on this node fetched it meanwhile
                return Artifact(stage, aid, dest)
            problem = fetch(self.remote, f"{stage}/{aid}", raw, dest)
        if problem:
            self._remote_bad[(stage, aid)] = raw
            _warn(f"artifact {stage} {aid} at {self.remote.uri}/{stage}/{aid} is damaged: {problem}; "
                  f"it will be rebuilt")
            return None
        return Artifact(stage, aid, dest)

    @contextlib.contextmanager
    def claim(self, stage: str, aid: str, log: Log | None = None) -> Iterator[Any]:
        """Hold the per-artifact lock: an OS file lock (released even when the holder is SIGKILLed) and,
        for a remote store, the leased claim object that other nodes respect. Yields the remote claim."""
        from filelock import FileLock, Timeout

        locks = self.root / LOCK_DIR
        locks.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(locks / f"{stage}-{aid}.lock"), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if log is not None:
                log(f"waiting for {stage} {aid}: another process is computing it")
            lock.acquire()
        try:
            if self.remote is None:
                yield None
                return
            from dr4sr.storage.claim import S3Claim

            held = S3Claim(self.remote, f"{stage}-{aid}")
            held.acquire(log, f"{stage} {aid}")
            try:
                yield held
            finally:
                held.release()
        finally:
            lock.release()

    @contextlib.contextmanager
    def create(self, stage: str, config: Any, inputs: dict[str, str] | None = None,
               extra: dict | None = None, resumable: bool = False,
               log: Log | None = None) -> Iterator["ArtifactWriter"]:
        """Yield a writer whose `dir` is the artifact's staging folder; on success it becomes the artifact.

        The caller holds the artifact's lock for the whole build. A `resumable` stage keeps what a killed
        or interrupted build left in the staging folder (its checkpoints) for the next build of the same
        id; any other stage starts from an empty folder and removes it on failure.
        """
        aid = artifact_id(stage, config, inputs)
        with self.claim(stage, aid, log) as held:
            final, staging = self.root / stage / aid, self.staging_path(stage, aid)
            writer = ArtifactWriter(stage, aid, staging, dict(extra or {}))
            existing = self.get(stage, aid)
            if existing is not None:  # finished by another process while we waited
                writer.artifact, writer.reused = existing, True
                yield writer
                return
            self._clear_leftovers(stage, aid)
            if staging.exists() and not resumable:
                shutil.rmtree(staging)
            if resumable and self.remote is not None:
                writer.remote, writer.held = self.remote, held
                self._fetch_staging(stage, aid, staging)
            writer.resumed = staging.exists()
            staging.mkdir(parents=True, exist_ok=True)
            started = time.time()
            ok = False
            try:
                yield writer
                manifest = {
                    "stage": stage, "id": aid, "config": _canonical(config), "inputs": _canonical(inputs or {}),
                    "code_version": __version__, "format": FORMAT_VERSION,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "seconds": round(time.time() - started, 3), **_canonical(writer.info),
                }
                self._commit(writer, manifest, final, held)
                ok = True
            finally:
                if not ok and not resumable:
                    shutil.rmtree(staging, ignore_errors=True)

    def get_or_create(self, stage: str, config: Any, inputs: dict[str, str] | None,
                      build: Callable[["ArtifactWriter"], None], resumable: bool = False,
                      log: Log | None = None, notify: Callable[[str], None] | None = None) -> Artifact:
        """The artifact of (stage, config, inputs), built by `build(writer)` only if no process has it yet.
        `notify(event)`: "cached" (found), "start" (this process builds it), then "done"; or "waited"
        (another process built it while this one waited for the lock)."""
        notify = notify or (lambda event: None)
        found = self.get(stage, artifact_id(stage, config, inputs))
        if found is not None:
            notify("cached")
            return found
        with self.create(stage, config, inputs, resumable=resumable, log=log) as w:
            if not w.reused:
                notify("start")
                build(w)
        notify("waited" if w.reused else "done")
        return w.artifact

    def _fetch_staging(self, stage: str, aid: str, staging: Path) -> None:
        """A resumable build on a remote store continues from what the last builder of this id saved to
        the bucket's staging area (its checkpoints), on whichever node that builder ran."""
        rel = f"{stage}/{STAGING_PREFIX}{aid}"
        for name in self.remote.list_files(rel):
            self.remote.download(f"{rel}/{name}", staging / name)

    def _commit(self, writer: "ArtifactWriter", manifest: dict, final: Path, held: Any = None) -> None:
        """manifest.json last, then one rename: the artifact appears complete or not at all. A remote
        store gets the files first and the manifest last; the local folder becomes the cached copy."""
        manifest["files"] = file_table(writer.dir)
        tmp = writer.dir / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, writer.dir / "manifest.json")
        if self.remote is not None:
            from dr4sr.storage.mirror import publish

            publish(self.remote, writer.dir, f"{writer.stage}/{writer.id}", held.check)
            self._remote_bad.pop((writer.stage, writer.id), None)
            # the saved progress of the build is no longer needed (a killed build's would be resumed)
            self.remote.delete_dir(f"{writer.stage}/{STAGING_PREFIX}{writer.id}", first=MANIFEST)
        if final.exists():  # without a good manifest it is never trusted: an old crash's leftover, or damaged
            shutil.rmtree(final)
        os.rename(writer.dir, final)
        writer.artifact = Artifact(writer.stage, writer.id, final)

    def _clear_leftovers(self, stage: str, aid: str) -> None:
        """Remove temp folders of this id left by killed builds of older versions (`.tmp-<id>-*`)."""
        for old in (self.root / stage).glob(f".tmp-{aid}-*"):
            shutil.rmtree(old, ignore_errors=True)


@dataclasses.dataclass
class ArtifactWriter:
    stage: str
    id: str
    dir: Path
    info: dict
    artifact: Artifact | None = None
    reused: bool = False  # another process finished it while this one waited for the lock
    resumed: bool = False  # the staging folder held a killed build's files (resumable stages)
    remote: Any = None  # a remote store's root, for a resumable build's saved progress
    held: Any = None  # that build's claim

    def save_progress(self, path: str | Path) -> None:
        """Copy one file of a resumable build (a checkpoint inside `dir`) to the bucket's staging area,
        where a build of this id resumed on another node finds it. Nothing to do on a local store (the
        staging folder is there already). A builder that lost its claim stops here."""
        if self.remote is None:
            return
        self.held.check()
        path = self.dir / path
        rel = path.resolve().relative_to(self.dir.resolve()).as_posix()
        self.remote.upload(path, f"{self.stage}/{STAGING_PREFIX}{self.id}/{rel}")
