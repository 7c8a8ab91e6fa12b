"""cluster.yaml is a valid Ray autoscaler config (checked offline against Ray's own schema) with the
structure the platform relies on: CPU head, CPU workers, spot GPU workers, all scaling from zero."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CLUSTER_YAML = REPO / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_matches_ray_schema(config):
    """The installed Ray's ray-schema.json, directly (raw file) and after Ray's own default filling."""
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the file as written: no unknown keys anywhere
    prepared = prepare_config(copy.deepcopy(config))  # what `ray up` does before validating
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"


def test_node_types(config):
    types = config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert config["head_node_type"] == "head"
    assert config["provider"]["type"] == "aws"
    assert {"region", "availability_zone", "cache_stopped_nodes"} <= set(config["provider"])
    assert config["auth"]["ssh_user"]
    for name in ("cpu_worker", "gpu_worker"):
        assert types[name]["min_workers"] == 0, f"{name} must scale from zero"
        assert types[name]["max_workers"] > 0
    assert sum(t.get("max_workers", 0) for n, t in types.items() if n != "head") >= config["max_workers"] > 0
    assert types["head"]["resources"].get("GPU", 0) == 0
    assert types["cpu_worker"]["resources"].get("GPU", 0) == 0 and types["cpu_worker"]["resources"]["CPU"] > 0
    assert types["gpu_worker"]["resources"]["GPU"] >= 1
    assert (types["gpu_worker"]["node_config"]["InstanceType"].split(".")[0]
            in {"g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5"})


def test_gpu_workers_are_spot_and_cpu_nodes_are_not(config):
    types = config["available_node_types"]
    assert types["gpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert "InstanceMarketOptions" not in types["head"]["node_config"]  # losing the head loses the cluster
    # spot instances cannot be stopped and restarted: idle nodes are terminated
    assert config["provider"]["cache_stopped_nodes"] is False


def test_every_node_has_an_explicit_image(config):
    """Ray's built-in default AMI is Ubuntu 18.04: too old for torch 2.13 wheels."""
    for name, node in config["available_node_types"].items():
        assert node["node_config"].get("ImageId", "").lower() not in ("", "latest_dlami"), name


def test_usage_stats_disabled_in_start_commands(config):
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts, key
        for cmd in starts:
            assert "RAY_USAGE_STATS_ENABLED=0" in cmd, cmd
            assert "--disable-usage-stats" in cmd or key == "worker_start_ray_commands", cmd
            assert "RAY_AUTH_MODE=token" in cmd, cmd  # every node agrees on token auth
    head = next(c for c in config["head_start_ray_commands"] if "ray start" in c)
    assert "--head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--dashboard-host=0.0.0.0" not in head  # job API only through the SSH tunnel


def test_setup_installs_the_project_with_pinned_gpu_torch(config):
    setup = "\n".join(config["setup_commands"])
    assert '"torch==2.13.0"' in setup and "download.pytorch.org/whl/cpu" not in setup
    assert "-e ~/dr4sr" in setup and config["file_mounts"]["~/dr4sr"] == "."
    assert "torch.cuda.is_available()" in setup
    assert "DR4SR_DATA_DIR=" in setup and "DR4SR_ARTIFACTS=" in setup
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in pyproject, "cluster.yaml and pyproject.toml must pin the same torch"


def test_upload_and_sync_skip_the_venv(config):
    assert {".gitignore", ".rayignore"} <= set(config["rsync_filter"])
    assert ".venv" in config["rsync_exclude"]
    assert {".venv", ".venv/"} & set((REPO / ".gitignore").read_text().split())  # .venv also covers a symlink


# ---------------------------------------------------------------- `dr4sr check-cluster`: one line per bad file

def test_check_cluster_accepts_the_shipped_file(capsys):
    from dr4sr.cli import main

    assert main(["check-cluster", str(CLUSTER_YAML)]) == 0
    assert "valid Ray cluster config" in capsys.readouterr().out


@pytest.mark.parametrize("edit, where", [
    (("    max_workers: 4\n", "    max_workers: many\n"),
     "key available_node_types.gpu_worker.max_workers: 'many' is not of type 'integer'"),
    (("head_node_type: head\n", "head_node_type: head\nheadnode_typo: 1\n"), "key headnode_typo: "),
    (("head_node_type: head\n", "head_node_type: boss\n"), "key head_node_type: 'boss' is not one of"),
    (("head_node_type: head\n", "head_node_type: [head\n"), "invalid YAML"),
])
def test_check_cluster_names_line_and_key(tmp_path, capsys, edit, where):
    from dr4sr.cli import main

    text = CLUSTER_YAML.read_text()
    assert edit[0] in text
    bad = tmp_path / "cluster.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    assert main(["check-cluster", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dr4sr: error: {bad}:") and where in err and err.count("\n") == 1
    line = int(err.split(f"{bad}:")[1].split(":")[0])
    changed = edit[1].splitlines()[-1] if "typo" in edit[1] else edit[1].strip()
    assert changed.split(":")[0] in bad.read_text().splitlines()[line - 1] or "YAML" in where


def test_study_drivers_stay_on_the_head_and_trials_fit_gpu_workers(config):
    """jobs/tune.py --driver-resource TRAIN_DRIVER puts multi-worker trials' drivers on the on-demand head;
    fractional trials (--gpus-per-trial 0.25) pack onto the spot GPU workers; studies live on the EFS."""
    types = config["available_node_types"]
    assert types["head"]["resources"].get("TRAIN_DRIVER", 0) >= 1
    assert all("TRAIN_DRIVER" not in t["resources"] for n, t in types.items() if n != "head")
    assert types["gpu_worker"]["resources"]["CPU"] >= 4 * 1  # four 0.25-GPU trials, one CPU each
    setup = "\n".join(config["setup_commands"])
    assert "/mnt/dr4sr/studies" in setup and "/mnt/dr4sr/grid" in setup
    text = CLUSTER_YAML.read_text()
    assert "jobs/tune.py" in text and "--driver-resource TRAIN_DRIVER" in text and "jobs/grid.py" in text
