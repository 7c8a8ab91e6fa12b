"""Test helper: a tiny artifact builder that counts its calls (one builder per id, rebuilds after damage)."""
from __future__ import annotations

PAYLOAD = b"0123456789" * 1000


def build_counter(calls: list):
    def build(w):
        calls.append(1)
        (w.dir / "data.bin").write_bytes(PAYLOAD)
        (w.dir / "sub").mkdir()
        (w.dir / "sub" / "rows.txt").write_text("a b c\n")
    return build
