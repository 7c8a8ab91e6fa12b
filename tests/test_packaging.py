"""A wheel of the package, installed non-editable, runs from outside the repository with its shipped
configs: the paper-era preset (configs/presets/) included."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, \
        f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow  # ~15 s: builds and installs a wheel, then a smoke run of the dr4sr variant
def test_wheel_installs_and_runs_the_paper_era_preset_outside_the_repo(tiny_dataset, tmp_path):
    # build from a clean copy: the checkout's egg-info (editable install) would add files the wheel's
    # own package-data rules leave out, and an in-tree build would leave build/ in the repository
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "platform", src / "platform", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip"]
    _run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "dist"),
                str(src)], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("dr4sr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "platform" / "dr4sr"
    configs = {f"dr4sr/{p.relative_to(package)}" for p in package.rglob("*.yaml")}
    assert "dr4sr/configs/presets/paper-era.yaml" in configs and configs <= names, sorted(configs - names)

    site = tmp_path / "site"
    _run(pip + ["install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)], tmp_path)
    work = tmp_path / "work"  # outside the repository: nothing resolves relative to the checkout
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    where = _run([sys.executable, "-c", "import dr4sr; print(dr4sr.__file__)"], work, env).strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where  # the wheel, not the editable checkout

    _run([sys.executable, "-m", "dr4sr.cli", "run", "--dataset", str(tiny_dataset), "--variant", "dr4sr",
          "--preset", "paper-era", "--smoke-test", "--set", "regen.k=2", "--out", "out", "--store", "store"], work, env)
    metrics = json.loads((work / "out-smoke" / "metrics.json").read_text())
    assert metrics["preset"] == "paper-era" and metrics["regen_config"]["preset"] == "paper-era"
    regen = metrics["regen_config"]
    assert (regen["regenerate"]["max_length"], regen["regenerate"]["memories"], regen["init"]["data"]) == \
        (24, [0], "pattern")  # the preset's values, not the defaults (10, "all", "original")
    assert regen["pretrain"]["max_epochs"] == 2  # the smoke budget over the preset's 40
