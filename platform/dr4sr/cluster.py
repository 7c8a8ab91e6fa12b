"""`dr4sr check-cluster [cluster.yaml]`: validate a Ray autoscaler config offline, before `ray up`.

Checks the installed Ray's own schema (ray-schema.json, the file as written: unknown keys are errors)
and what the platform relies on (a head node type that exists, workers that scale from zero). A bad
file gets one line naming the file, the line and the key. It also warns (without failing) when the
artifact store the nodes are given cannot be shared: a node-local path on a multi-node cluster, or a
bucket that worker nodes have no instance profile to reach.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from dr4sr.errors import ConfigError
from dr4sr.storage import is_uri

COMMAND_KEYS = ("setup_commands", "head_setup_commands", "worker_setup_commands", "initialization_commands",
                "head_start_ray_commands", "worker_start_ray_commands")
STORE_SETTING = re.compile(r"DR4SR_ARTIFACTS=['\"]?([^\s'\";]+)")
# `mount [-t nfs4|efs|lustre ...] SOURCE MOUNTPOINT` where SOURCE is a network one (host:/path, fs-id:/)
SHARED_MOUNT = re.compile(r"\bmount\b[^;&|]*?\s\S+:/\S*\s+(/[^\s;&|)]+)")


def _line_of(text: str, keys: list) -> int | None:
    """1-based line of the YAML node at `keys` (mapping keys / sequence indices), or of its deepest parent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def validate_cluster_yaml(path: str | Path) -> dict:
    import jsonschema
    import ray.autoscaler

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{_where(path, mark.line + 1 if mark else None)}: invalid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of autoscaler settings")
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(config))
    if error is not None:
        keys = list(error.absolute_path)
        if error.validator == "additionalProperties":  # name the unknown key itself, not its parent
            known = set(error.schema.get("properties", {}))
            extra = sorted(k for k in error.instance if k not in known)
            keys += extra[:1]
        name = ".".join(map(str, keys)) or "(top level)"
        raise ConfigError(f"{_where(path, _line_of(text, keys))}: key {name}: {error.message}")
    types = config.get("available_node_types", {})
    head = config.get("head_node_type")
    if head not in types:
        raise ConfigError(f"{_where(path, _line_of(text, ['head_node_type']))}: key head_node_type: "
                          f"{head!r} is not one of available_node_types {sorted(types)}")
    for name, node in types.items():
        if name != head and node.get("min_workers", 0) != 0:
            raise ConfigError(f"{_where(path, _line_of(text, ['available_node_types', name, 'min_workers']))}: "
                              f"key available_node_types.{name}.min_workers: workers must scale from zero "
                              f"(got {node['min_workers']})")
    return config


def _commands(config: dict) -> list[tuple[str, int, str]]:
    return [(key, i, str(cmd)) for key in COMMAND_KEYS for i, cmd in enumerate(config.get(key) or [])]


def store_warnings(path: str | Path, config: dict) -> list[str]:
    """Why the artifact store given to the nodes ($DR4SR_ARTIFACTS in the setup/start commands) would not
    be shared by all of them. Only multi-node configs: a single node may keep its store anywhere."""
    types = config.get("available_node_types", {})
    head = config.get("head_node_type")
    if not config.get("max_workers", 0) or not any(n.get("max_workers", 0) for k, n in types.items() if k != head):
        return []
    text = Path(path).read_text(encoding="utf-8")
    found = [(key, i, m.group(1)) for key, i, cmd in _commands(config) for m in STORE_SETTING.finditer(cmd)]
    if not found:
        return [f"{path}: warning: no command sets DR4SR_ARTIFACTS, so every node uses its own ./artifacts: "
                f"nodes rebuild each other's artifacts; set it to s3://bucket/prefix (or a shared mount)"]
    key, i, store = found[-1]
    where = _where(Path(path), _line_of(text, [key, i]))
    if is_uri(store):
        bare = [k for k, n in types.items() if k != head and "IamInstanceProfile" not in n.get("node_config", {})]
        if store.startswith("s3://") and bare and config.get("provider", {}).get("type") == "aws":
            return [f"{where}: warning: the store is {store} but node types {bare} have no IamInstanceProfile; "
                    f"Ray gives its default S3 role to the head only, so those workers cannot reach the bucket"]
        return []
    mounts = [m.group(1).rstrip("/") for _, _, cmd in _commands(config) for m in SHARED_MOUNT.finditer(cmd)]
    if any(store == m or store.startswith(m + "/") for m in mounts):
        return []  # under a network file system (EFS/NFS) that every node mounts
    return [f"{where}: warning: the artifact store DR4SR_ARTIFACTS={store} is a path local to each node, on a "
            f"cluster of up to {config.get('max_workers')} workers: nodes cannot see each other's artifacts; "
            f"use s3://bucket/prefix or a path under a shared mount"]


def cmd_check_cluster(args) -> int:
    import sys

    config = validate_cluster_yaml(args.path)
    for line in store_warnings(args.path, config):
        print(line, file=sys.stderr)
    types = config["available_node_types"]
    nodes = ", ".join(f"{k} (max {v.get('max_workers', 0)})" for k, v in types.items())
    print(f"{args.path}: valid Ray cluster config; head {config['head_node_type']!r}, node types {nodes}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("check-cluster", help="validate a Ray autoscaler config (cluster.yaml) offline")
    p.add_argument("path", nargs="?", default="cluster.yaml")
    p.set_defaults(func=cmd_check_cluster)
