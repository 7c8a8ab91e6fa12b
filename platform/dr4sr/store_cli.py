"""`dr4sr store verify [--repair]`: check every artifact of a store (a folder or s3://bucket/prefix) against
its manifest's sizes and SHA-256. On a bucket every file is streamed and hashed; this node's cache is not
what is checked."""
from __future__ import annotations

import json
import shutil
from typing import Callable, NamedTuple

from dr4sr.artifacts import LOCK_DIR, MANIFEST, STAGING_PREFIX, ArtifactStore, check_artifact
from dr4sr.errors import ConfigError


class Row(NamedTuple):
    stage: str
    id: str
    where: str
    problem: str | None
    listed: bool  # its manifest lists its files
    remove: Callable[[], None]


def _listed(read: Callable[[], str]) -> bool:
    try:
        return "files" in json.loads(read())
    except (OSError, ValueError):
        return False


def scan(store: ArtifactStore) -> list[Row]:
    """One row per finished artifact (a crash's leftover without a manifest is never trusted and is
    replaced by the next build, so it is not listed)."""
    if store.remote is not None:
        return _scan_remote(store)
    out = []
    for stage_dir in sorted(p for p in store.root.iterdir() if p.is_dir() and p.name != LOCK_DIR):
        for art in sorted(p for p in stage_dir.iterdir()
                          if p.is_dir() and not p.name.startswith((STAGING_PREFIX, "."))):
            if not (art / MANIFEST).exists():
                continue
            problem = check_artifact(art, full=True)
            listed = problem is None and _listed((art / MANIFEST).read_text)
            out.append(Row(stage_dir.name, art.name, str(art), problem, listed,
                           lambda art=art: shutil.rmtree(art)))
    return out


def _scan_remote(store: ArtifactStore) -> list[Row]:
    from dr4sr.storage.mirror import check_remote

    root, out = store.remote, []
    root.require_bucket()
    for stage in (s for s in root.list_dirs() if not s.startswith(".")):
        for aid in (a for a in root.list_dirs(stage) if not a.startswith(".")):
            rel = f"{stage}/{aid}"
            raw = root.read_bytes(f"{rel}/{MANIFEST}")
            if raw is None:
                continue
            problem = check_remote(root, rel, full=True)
            listed = problem is None and _listed(raw.decode)
            out.append(Row(stage, aid, f"{root.uri}/{rel}", problem, listed,
                           lambda rel=rel: root.delete_dir(rel, first=MANIFEST)))
    return out


def cmd_verify(args) -> int:
    store = ArtifactStore(args.store)
    if store.remote is None and not store.root.is_dir():
        raise ConfigError(f"--store {store.root}: not a folder")
    try:
        rows = scan(store)
    except OSError as exc:  # an unreachable bucket or endpoint, no permission: one line
        raise ConfigError(f"--store {store.uri}: cannot list it ({exc})") from None
    damaged = [r for r in rows if r.problem]
    for row in damaged:
        print(f"DAMAGED {row.stage} {row.id}: {row.problem}" + ("; removed, the next run that needs it rebuilds it"
                                                              if args.repair else ""))
        if args.repair:
            row.remove()
    unlisted = sum(1 for r in rows if not r.problem and not r.listed)
    print(f"{store.uri}: {len(rows)} artifacts, {len(damaged)} damaged"
          + (f", {unlisted} written before manifests listed their files (manifest checked only)" if unlisted else ""))
    return 1 if damaged and not args.repair else 0


def register(sub) -> None:
    p = sub.add_parser("store", help="the artifact store: verify every artifact against its manifest")
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="check sizes and SHA-256 of every artifact's files (exit 1 if damaged)")
    v.add_argument("--store", default=None,
                   help="the store: a folder or s3://bucket/prefix (default $DR4SR_ARTIFACTS or ./artifacts)")
    v.add_argument("--repair", action="store_true", help="remove damaged artifacts so that they are rebuilt")
    v.set_defaults(func=cmd_verify)
