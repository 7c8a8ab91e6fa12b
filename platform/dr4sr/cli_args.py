"""Argument helpers shared by the `dr4sr` subcommands. A module of its own: the command modules that
`dr4sr.cli` loads use them, so they cannot import `dr4sr.cli` back."""
from __future__ import annotations

import argparse

# the registry's; a test keeps them equal
BACKBONE_NAMES = ("sasrec", "gru4rec", "fmlp", "gcegnn", "cl4srec", "bert4rec")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (1 runs in this process), got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def backbone_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbone", default="sasrec", metavar="NAME",
                   help=f"target model: {', '.join(BACKBONE_NAMES)} (default sasrec)")


def preset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help="a named preset (platform/dr4sr/configs/presets/, e.g. paper-era) or a YAML path, under --set")
