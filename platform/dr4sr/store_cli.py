"""`dr4sr store verify [--repair]`: check every artifact of a store against its manifest's sizes and SHA-256."""
from __future__ import annotations

import shutil
from pathlib import Path

from dr4sr.artifacts import LOCK_DIR, MANIFEST, STAGING_PREFIX, ArtifactStore, check_artifact
from dr4sr.errors import ConfigError


def scan(store: ArtifactStore) -> list[tuple[str, str, Path, str | None, bool]]:
    """(stage, id, path, problem, listed) per finished artifact; `listed`: its manifest lists its files."""
    import json

    out = []
    for stage_dir in sorted(p for p in store.root.iterdir() if p.is_dir() and p.name != LOCK_DIR):
        for art in sorted(p for p in stage_dir.iterdir() if p.is_dir() and not p.name.startswith((STAGING_PREFIX, "."))):
            if not (art / MANIFEST).exists():
                continue  # a crash's leftover without a manifest: never trusted, replaced by the next build
            problem = check_artifact(art, full=True)
            try:
                listed = problem is None and "files" in json.loads((art / MANIFEST).read_text())
            except ValueError:
                listed = False
            out.append((stage_dir.name, art.name, art, problem, listed))
    return out


def cmd_verify(args) -> int:
    store = ArtifactStore(args.store)
    if not store.root.is_dir():
        raise ConfigError(f"--store {store.root}: not a folder")
    rows = scan(store)
    damaged = [r for r in rows if r[3]]
    for stage, aid, path, problem, _ in damaged:
        print(f"DAMAGED {stage} {aid}: {problem}" + ("; removed, the next run that needs it rebuilds it"
                                                      if args.repair else ""))
        if args.repair:
            shutil.rmtree(path)
    unlisted = sum(1 for r in rows if not r[3] and not r[4])
    print(f"{store.root}: {len(rows)} artifacts, {len(damaged)} damaged"
          + (f", {unlisted} written before manifests listed their files (manifest checked only)" if unlisted else ""))
    return 1 if damaged and not args.repair else 0


def register(sub) -> None:
    p = sub.add_parser("store", help="the artifact store: verify every artifact against its manifest")
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("verify", help="check sizes and SHA-256 of every artifact's files (exit 1 if damaged)")
    v.add_argument("--store", default=None, help="the store (default $DR4SR_ARTIFACTS or ./artifacts)")
    v.add_argument("--repair", action="store_true", help="remove damaged artifacts so that they are rebuilt")
    v.set_defaults(func=cmd_verify)
