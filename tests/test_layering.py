"""Layers import only downward: every `dr4sr.*` import of every module of the package (at module level,
inside functions, under TYPE_CHECKING alike) must go to a lower tier of LAYERS, or stay in its own group.

A group is a set of module prefixes (the longest prefix wins: `dr4sr.mining.cli` is a command, not
mining). Groups in one tier are peers that must not import each other (mining, personalizer, baselines).
"""
from __future__ import annotations

import ast
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent / "platform"
PACKAGE = SOURCE_ROOT / "dr4sr"

# lowest tier first: {group: module prefixes}; "dr4sr" itself (its __init__) is core
LAYERS: list[dict[str, tuple[str, ...]]] = [
    {"core": ("dr4sr.errors", "dr4sr.config", "dr4sr.paths", "dr4sr.artifacts", "dr4sr.storage", "dr4sr.presets",
              "dr4sr.smoke")},
    {"data": ("dr4sr.data",)},
    {"models": ("dr4sr.models",)},
    {"eval": ("dr4sr.eval",)},  # ranks with a Backbone
    {"train": ("dr4sr.train",)},
    {"mining": ("dr4sr.mining",), "personalizer": ("dr4sr.personalizer",), "baselines": ("dr4sr.baselines",)},
    {"regen": ("dr4sr.regen",)},  # reads mine artifacts
    {"stages": ("dr4sr.stages",)},
    {"pipeline": ("dr4sr.pipeline", "dr4sr.plan")},
    {"search/report": ("dr4sr.search", "dr4sr.report")},
    {"commands": ("dr4sr.cli_args", "dr4sr.pipeline_cli", "dr4sr.report_cli", "dr4sr.store_cli", "dr4sr.dashboard_cli",
                  "dr4sr.cluster", "dr4sr.mining.cli", "dr4sr.regen.cli", "dr4sr.search.cli", "dr4sr.baselines.cli")},
    {"main": ("dr4sr.cli",)},  # loads the command modules
]


def place(module: str) -> tuple[int, str] | None:
    """(tier, group) of a module by its longest matching prefix; None when the table lacks it."""
    if module == "dr4sr":
        return 0, "core"
    best = None
    for tier, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), tier, group)
    return None if best is None else best[1:]


def exists(module: str) -> bool:
    path = SOURCE_ROOT / module.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def dr4sr_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import of a dr4sr module in `source` (the text of `module`), anywhere in it;
    relative imports resolved, and `from dr4sr.x import y` counted as dr4sr.x.y when that is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if exists(sub) else base))
    return [(line, name) for line, name in found if name == "dr4sr" or name.startswith("dr4sr.")]


def package_modules() -> list[tuple[Path, str, bool]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out.append((path, ".".join(parts[:-1] if is_package else parts), is_package))
    return out


def test_every_module_has_a_layer():
    missing = [name for _, name, _ in package_modules() if place(name) is None]
    assert not missing, f"add these modules to LAYERS in {Path(__file__).name}: {missing}"


def test_imports_only_go_down():
    upward = []
    for path, name, is_package in package_modules():
        mine = place(name)
        for line, target in dr4sr_imports(path.read_text(), name, is_package):
            theirs = place(target)
            if mine is None or theirs is None:
                continue  # test_every_module_has_a_layer names it
            if theirs[1] != mine[1] and theirs[0] >= mine[0]:
                upward.append(f"{path.relative_to(SOURCE_ROOT)}:{line}: {name} ({mine[1]}) imports {target} "
                              f"({theirs[1]})")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_and_relative_imports():
    code = ("import dr4sr.personalizer\nfrom dr4sr import __version__\n"
            "def f():\n    from dr4sr.train import loop\n    from ..train.augment import crop\n")
    found = {name for _, name in dr4sr_imports(code, "dr4sr.models.probe")}
    assert found == {"dr4sr.personalizer", "dr4sr", "dr4sr.train.loop", "dr4sr.train.augment"}
    assert place("dr4sr.mining.cli")[1] == "commands" and place("dr4sr.mining.stage")[1] == "mining"
    assert place("dr4sr.cli")[1] == "main" and place("dr4sr.cli_args")[1] == "commands"
    assert place("dr4sr.models.registry")[0] < place("dr4sr.train.losses")[0]
    assert place("dr4sr.unknown") is None
