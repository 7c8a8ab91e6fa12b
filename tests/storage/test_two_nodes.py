"""Two Ray nodes on this machine (`ray start`, each its own temp dir, ports, cache folder and custom
resource) share an artifact through an s3:// store: a task pinned to the second node builds it, a task
pinned to the head reads it through its own cache, and a second build request on the head reuses it.
The nodes are stopped by the pids this test started (never `ray stop`, which would kill every Ray)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from procs import pids_mentioning

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

DRIVER = textwrap.dedent("""
    import sys, ray
    from dr4sr.artifacts import ArtifactStore

    address, uri = sys.argv[1], sys.argv[2]
    ray.init(address=address, log_to_driver=False)

    def build(w):
        import os
        (w.dir / "rows.txt").write_text("built on " + os.environ["DR4SR_CACHE"])

    @ray.remote(num_cpus=0)
    def need(uri):
        import os
        art = ArtifactStore(uri).get_or_create("mine", {"alpha": 5}, {"splits": "two-nodes"}, build)
        return ray.get_runtime_context().get_node_id(), os.environ["DR4SR_CACHE"], str(art.path), \\
            (art.path / "rows.txt").read_text()

    second = ray.get(need.options(resources={"second_node": 1}).remote(uri))
    head = ray.get(need.options(resources={"head_node": 1}).remote(uri))
    print("SECOND", *second, sep="|")
    print("HEAD", *head, sep="|")
""")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_node(env: dict, temp_dir: str, extra: list[str], resource: str, log: Path) -> subprocess.Popen:
    agent_http, agent_grpc, metrics, rt_agent, nm, om = free_ports(6)
    cmd = [str(BIN / "ray"), "start", "--block", "--num-cpus=1", "--num-gpus=0", f'--resources={{"{resource}": 1}}',
           f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
           f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={rt_agent}",
           f"--node-manager-port={nm}", f"--object-manager-port={om}", f"--temp-dir={temp_dir}",
           "--disable-usage-stats", *extra]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_node(proc: subprocess.Popen, temp_dir: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` then shuts down exactly this node's processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in pids_mentioning(temp_dir):  # leftovers of this node only: their command lines name its temp dir
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def node_pids(temp_dir: str, cache: str) -> list[int]:
    """Every process of one test node: its command line names the node's temp dir (raylet, agents), or its
    environment holds the node's own cache folder (workers, which retitle their command line)."""
    pids = set(pids_mentioning(temp_dir))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if f"DR4SR_CACHE={cache}\0".encode() in (entry / "environ").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                pass
    return sorted(pids)


@contextlib.contextmanager
def two_nodes(tmp_path: Path, **extra_env: str):
    """A head (resource head_node, cache cache-head) and a second node (second_node, cache-second), each
    with its own temp dir and ports. Yields (GCS address, [head env, second env], [(proc, temp dir)])."""
    gcs, client = free_ports(2)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    base.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
                PYTHONPATH=str(REPO / "platform"), PATH=f"{BIN}{os.pathsep}{base.get('PATH', '')}", **extra_env)
    dirs = [tempfile.mkdtemp(prefix="dr4sr-2n-", dir="/tmp") for _ in range(2)]  # short: unix sockets
    envs = [{**base, "DR4SR_CACHE": str(tmp_path / name)} for name in ("cache-head", "cache-second")]
    nodes = []
    try:
        nodes.append((start_node(envs[0], dirs[0], ["--head", f"--port={gcs}", "--include-dashboard=false",
                                                     f"--ray-client-server-port={client}"], "head_node",
                                 tmp_path / "head.log"), dirs[0]))
        time.sleep(5)
        nodes.append((start_node(envs[1], dirs[1], [f"--address=127.0.0.1:{gcs}"], "second_node",
                                 tmp_path / "second.log"), dirs[1]))
        yield f"127.0.0.1:{gcs}", envs, nodes
    finally:
        for proc, temp_dir in reversed(nodes):
            stop_node(proc, temp_dir)
        for d in dirs:
            subprocess.run(["rm", "-rf", d], check=False)


def run_driver(tmp_path: Path, script: str, args: list[str], env: dict, nodes: list) -> str:
    """Run `script` against the cluster, again until both nodes have joined (it fails fast before that)."""
    path = tmp_path / "driver.py"
    path.write_text(script)
    deadline, out = time.time() + 180, None
    while time.time() < deadline:
        for proc, _ in nodes:
            assert proc.poll() is None, (tmp_path / "head.log").read_text()[-3000:] + \
                (tmp_path / "second.log").read_text()[-3000:]
        out = subprocess.run([sys.executable, str(path), *args], env=env, capture_output=True, text=True,
                             timeout=300)
        if out.returncode == 0:
            break
        time.sleep(3)
    assert out is not None and out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_an_artifact_built_on_one_node_is_read_on_another(bucket, tmp_path):
    with two_nodes(tmp_path) as (address, envs, nodes):
        stdout = run_driver(tmp_path, DRIVER, [address, bucket], envs[0], nodes)
    lines = dict(line.split("|", 1) for line in stdout.splitlines() if "|" in line)
    second_node, second_cache, second_path, second_text = lines["SECOND"].split("|")
    head_node, head_cache, head_path, head_text = lines["HEAD"].split("|")
    assert second_node != head_node  # two Ray nodes
    assert second_cache.endswith("cache-second") and head_cache.endswith("cache-head")
    assert second_path.startswith(second_cache) and head_path.startswith(head_cache)
    assert head_text == second_text == f"built on {second_cache}"  # built once, on the second node


RESUME_DRIVER = textwrap.dedent("""
    import json, sys, time, ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    address, uri, dataset, logs = sys.argv[1:5]
    while True:
        try:
            ray.init(address=address, log_to_driver=False)
            break
        except Exception:
            time.sleep(2)
    while True:  # both nodes joined
        second = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "second_node" in n["Resources"]]
        if second and sum(n["Alive"] for n in ray.nodes()) == 2:
            break
        time.sleep(1)

    @ray.remote(num_cpus=1, max_retries=2)  # as the grid's runs: a lost node's run is retried elsewhere
    def train(uri, dataset, logs):
        import os
        from pathlib import Path
        from dr4sr.artifacts import ArtifactStore
        from dr4sr.stages import Runtime, StageGraph, execute
        from dr4sr.stages.kinds import TrainStage
        from dr4sr.train.runner import build_run_config, prepare_splits

        node = Path(os.environ["DR4SR_CACHE"]).name
        cfg = build_run_config("sasrec", dataset, {"train": {"max_epochs": 8, "patience": 8}})

        def slow(record):  # after the epoch's checkpoint went to the bucket
            with open(Path(logs) / f"epochs-{node}", "a") as f:
                f.write(f"{record['epoch']}\\n")
            time.sleep(1.0)

        quiet = lambda m: None  # noqa: E731
        stage = TrainStage(cfg, prepare_splits(cfg), Runtime(log=quiet, on_epoch=slow))
        art = execute(StageGraph(stage), ArtifactStore(uri), log=quiet)[stage]
        history = json.loads((art.path / "metrics.json").read_text())["history"]
        return ray.get_runtime_context().get_node_id(), node, [h["epoch"] for h in history]

    # soft affinity: start on the second node; once it is gone, anywhere
    where = NodeAffinitySchedulingStrategy(node_id=second[0], soft=True)
    node_id, node, epochs = ray.get(train.options(scheduling_strategy=where).remote(uri, dataset, logs))
    print("RESULT", node_id == second[0], node, json.dumps(epochs), sep="|", flush=True)
""")


@pytest.mark.slow  # ~1-2 min on a loaded 2-core machine
def test_a_run_on_a_lost_node_resumes_from_its_checkpoint_in_the_bucket_on_another(bucket, s3, tiny_dataset,
                                                                                    tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # a short lease: the head takes the dead node's claim over soon; quick node-death detection
    with two_nodes(tmp_path, DR4SR_CLAIM_LEASE_S="4", RAY_health_check_period_ms="1000",
                   RAY_health_check_failure_threshold="3") as (address, envs, nodes):
        script = tmp_path / "driver.py"
        script.write_text(RESUME_DRIVER)
        driver = subprocess.Popen([sys.executable, str(script), address, bucket, str(tiny_dataset), str(logs)],
                                  env=envs[0], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        second_log = logs / "epochs-cache-second"
        deadline = time.time() + 240
        while not (second_log.exists() and len(second_log.read_text().split()) >= 2):
            assert driver.poll() is None, driver.communicate()
            assert time.time() < deadline, "the run never got going on the second node"
            time.sleep(0.2)
        b, _, prefix = bucket[len("s3://"):].partition("/")
        staged = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix=f"{prefix}/train/").get("Contents", [])]
        assert any("/.staging-" in k and k.endswith("/checkpoints/last.pt") for k in staged), staged
        proc, temp_dir = nodes[1]
        for pid in node_pids(temp_dir, envs[1]["DR4SR_CACHE"]) + [proc.pid]:  # the second node dies at once
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(timeout=30)
        try:
            out, err = driver.communicate(timeout=300)
        finally:
            if driver.poll() is None:
                driver.kill()
        assert driver.returncode == 0, out[-3000:] + err[-3000:]
    on_second, node, epochs = next(line for line in out.splitlines() if line.startswith("RESULT")).split("|")[1:]
    assert on_second == "False" and node == "cache-head"  # Ray moved the run to the head
    assert json.loads(epochs) == list(range(8))  # every epoch exactly once in the history
    before = [int(e) for e in second_log.read_text().split()]
    after = [int(e) for e in (logs / "epochs-cache-head").read_text().split()]
    assert before[:2] == [0, 1] and after[-1] == 7
    assert 0 < after[0] <= before[-1] + 1  # resumed from a checkpoint the second node saved, not from scratch
