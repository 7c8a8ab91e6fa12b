"""The GPU options the epoch and pre-training benchmarks share: --device, --precision, --compile.

Imported as a sibling script (this folder is sys.path[0] when a benchmark runs).
"""
from __future__ import annotations

import argparse
import contextlib
import sys

import torch


def add_arguments(ap: argparse.ArgumentParser, compile_help: str) -> None:
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: torch.autocast over the forward and loss (weights and Adam stay fp32)")
    ap.add_argument("--compile", action="store_true", help=compile_help)


def device_of(args: argparse.Namespace) -> torch.device:
    """The device asked for; a one-line exit when it is CUDA and torch sees none."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    return device


def autocast(args: argparse.Namespace, device: torch.device) -> contextlib.AbstractContextManager:
    """A fresh context each call (an autocast object is not re-entrant)."""
    if args.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(args: argparse.Namespace, device: torch.device) -> str:
    return f"{device}, {args.precision}{', compiled' if args.compile else ''}"
