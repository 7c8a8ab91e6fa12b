"""Named presets: a YAML file of config sections applied under `--set` (e.g. `--preset paper-era`).

A preset is `configs/presets/<name>.yaml` (or any path to such a file) holding sections of the target
run (data, model, train, personalizer) and of the regeneration pipeline (mine, init, compose, regen, pretrain,
regenerate). Resolution order: defaults <- per-dataset defaults <- preset <- --set. The preset's name is
recorded in metrics.json and in the manifests of the artifacts it shaped; it never enters an artifact
id (the resolved values do), so a preset and the same values given by --set share artifacts.
"""
from __future__ import annotations

from pathlib import Path

from dr4sr.config import CONFIG_DIR, load_yaml
from dr4sr.errors import ConfigError

PRESET_DIR = CONFIG_DIR / "presets"
TARGET_SECTIONS = ("data", "model", "train", "personalizer")
REGEN_SECTIONS = ("mine", "init", "compose", "regen", "pretrain", "regenerate")


def available() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown preset {name!r}; available: {available()} (or a path to a .yaml file)")
    return path


def load_preset(name: str | None, sections: tuple[str, ...] = TARGET_SECTIONS + REGEN_SECTIONS) -> dict:
    """The preset's sections (empty for None); a section outside `sections` is an error naming the file."""
    if not name:
        return {}
    path = preset_path(name)
    data = load_yaml(path)
    for key, value in data.items():
        if key not in TARGET_SECTIONS + REGEN_SECTIONS:
            raise ConfigError(f"{path}: unknown section {key!r}; expected one of {TARGET_SECTIONS + REGEN_SECTIONS}")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: section {key!r} must be a mapping")
    return {k: v for k, v in data.items() if k in sections}


def check_preset(name: str | None, where: str) -> None:
    """Load the preset only to validate it; an error is prefixed with `where` (a file and key, an option)."""
    try:
        load_preset(name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
