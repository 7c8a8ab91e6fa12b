"""Argument helpers shared by the `dr4sr` subcommands. A module of its own: the command modules that
`dr4sr.cli` loads use them, so they cannot import `dr4sr.cli` back."""
from __future__ import annotations

import argparse

# the registry's; a test keeps them equal
BACKBONE_NAMES = ("sasrec", "gru4rec", "fmlp", "gcegnn", "cl4srec", "bert4rec")


def at_least(cast, low, kind: str, note: str = ""):
    """An argparse type: `cast(text)` >= `low`, else one line saying what was expected."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind} >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{note}, got {value:g}")
        return value
    return parse


positive_int = at_least(int, 1, "an integer", " (1 runs in this process)")
non_negative_float = at_least(float, 0, "a number")


def backbone_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="sasrec", metavar="NAME",
                   help=f"target model: {', '.join(BACKBONE_NAMES)} (default sasrec)")


def preset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help="a named preset (platform/dr4sr/configs/presets/, e.g. paper-era) or a YAML path, under --set")
