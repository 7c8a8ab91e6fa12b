"""Repository layout rules from DESIGN.md that are easy to break by accident."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "platform" / "dr4sr"


def test_platform_is_a_source_root_not_a_package():
    # `platform` is also a standard-library module: platform/__init__.py would shadow it for anything
    # run from the repository root and break `import torch`, `import ray` and `ray start`.
    assert not (REPO / "platform" / "__init__.py").exists(), "delete platform/__init__.py"


def test_import_dr4sr_and_stdlib_platform_from_repo_root():
    code = ("import platform, dr4sr; assert hasattr(platform, 'system'), platform.__file__; "
            "print(dr4sr.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(PACKAGE.resolve())


def test_torch_is_pinned_exactly():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = [d for d in deps if re.match(r"torch\b", d)]
    assert len(torch) == 1 and re.fullmatch(r"torch==\d+\.\d+\.\d+", torch[0].replace(" ", "")), torch


def test_every_config_yaml_parses():
    files = sorted(PACKAGE.glob("configs/**/*.yaml"))
    assert PACKAGE / "configs" / "sasrec.yaml" in files and PACKAGE / "configs" / "presets" / "paper-era.yaml" in files
    for path in files:
        data = yaml.safe_load(path.read_text())
        assert isinstance(data, dict) and data, f"{path} is empty or not a mapping"


def test_package_data_ships_every_config_yaml():
    """A non-editable install holds only what `[tool.setuptools.package-data]` names (a wheel is built and
    installed in tests/test_packaging.py): every YAML under configs/, presets included."""
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dr4sr"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern)}
    missing = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.yaml") if p not in shipped)
    assert not missing, f"add to [tool.setuptools.package-data] in pyproject.toml: {missing}"


def test_search_spaces_parse():
    """search_spaces/ is part of the fixed layout: it must exist, hold spaces, and each must validate
    against the real configs (keys of sections this build lacks are the only ones allowed to skip)."""
    from dr4sr.search.space import load_space

    files = sorted((REPO / "search_spaces").glob("*.yaml"))
    assert files, "search_spaces/ is missing or holds no *.yaml"
    for path in files:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
        space = load_space(path)  # raises ConfigError naming the file and key
        assert space.dimensions, path
