"""Security rules, checked on the source itself (a new call that breaks one fails here):
every checkpoint load is `torch.load(..., weights_only=True)`; YAML is only `safe_load`ed; no shell
(`shell=True`, os.system, os.popen) anywhere user strings could reach; every Ray start in the code,
scripts and tests keeps its dashboard off or bound to 127.0.0.1."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("platform", "jobs", "benchmarks", "tests") for p in (REPO / d).rglob("*.py")]


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_every_torch_load_is_weights_only():
    bad = []
    for path in SOURCES:
        for call, name in _calls(path):
            if name == "torch.load":
                value = _kw(call, "weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_yaml_is_only_safe_loaded_and_no_shell():
    bad = []
    for path in SOURCES:
        if path.name == "test_security.py":
            continue
        for call, name in _calls(path):
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "os.system", "os.popen") and \
                    path.name != "test_checkpoints.py":  # builds a tampered pickle that must NOT run
                bad.append(f"{path.relative_to(REPO)}:{call.lineno} {name}")
            shell = _kw(call, "shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                bad.append(f"{path.relative_to(REPO)}:{call.lineno} shell=True")
    assert not bad, bad


def test_ray_dashboards_stay_local():
    bad = []
    for path in SOURCES:
        for call, name in _calls(path):
            if name == "ray.init" and _kw(call, "address") is None:
                dash = _kw(call, "include_dashboard")
                host = _kw(call, "dashboard_host")
                local = (isinstance(dash, ast.Constant) and dash.value is False) or \
                        (isinstance(host, ast.Constant) and host.value == "127.0.0.1")
                if not local:
                    bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    for path in list((REPO / "scripts").glob("*.sh")) + SOURCES:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bray\b.*\bstart\b.*--head", line) or '"start", "--head"' in line:
                block = "\n".join(path.read_text().splitlines()[lineno - 1:lineno + 3])
                if "--include-dashboard=false" not in block and "--dashboard-host=127.0.0.1" not in block:
                    bad.append(f"{path.relative_to(REPO)}:{lineno} ray start")
    assert not bad, f"Ray started with a dashboard reachable from other hosts: {bad}"


def test_these_checks_can_fail(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch, yaml\ntorch.load('x')\nyaml.load(s)\nray.init()\n")
    names = [name for _, name in _calls(probe)]
    assert names == ["torch.load", "yaml.load", "ray.init"]
    (call, _), = [(c, n) for c, n in _calls(probe) if n == "torch.load"]
    assert _kw(call, "weights_only") is None
