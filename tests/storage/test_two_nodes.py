"""Two Ray nodes on this machine (`ray start`, each its own temp dir, ports, cache folder and custom
resource) share an artifact through an s3:// store: a task pinned to the second node builds it, a task
pinned to the head reads it through its own cache, and a second build request on the head reuses it.
The nodes are stopped by the pids this test started (never `ray stop`, which would kill every Ray)."""
from __future__ import annotations

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
    for entry in Path("/proc").iterdir():  # leftovers of this node only: their command lines name its temp dir
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if temp_dir.encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.slow
def test_an_artifact_built_on_one_node_is_read_on_another(bucket, tmp_path):
    gcs, client = free_ports(2)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    base.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
                PYTHONPATH=str(REPO / "platform"), PATH=f"{BIN}{os.pathsep}{base.get('PATH', '')}")
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
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        deadline, out = time.time() + 180, None
        while time.time() < deadline:  # until both nodes have joined (the driver fails fast before that)
            for proc, _ in nodes:
                assert proc.poll() is None, (tmp_path / "head.log").read_text()[-3000:] + \
                    (tmp_path / "second.log").read_text()[-3000:]
            out = subprocess.run([sys.executable, str(script), f"127.0.0.1:{gcs}", bucket], env=envs[0],
                                 capture_output=True, text=True, timeout=300)
            if out.returncode == 0:
                break
            time.sleep(3)
        assert out is not None and out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        lines = dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
        second_node, second_cache, second_path, second_text = lines["SECOND"].split("|")
        head_node, head_cache, head_path, head_text = lines["HEAD"].split("|")
        assert second_node != head_node  # two Ray nodes
        assert second_cache.endswith("cache-second") and head_cache.endswith("cache-head")
        assert second_path.startswith(second_cache) and head_path.startswith(head_cache)
        assert head_text == second_text == f"built on {second_cache}"  # built once, on the second node
    finally:
        for proc, temp_dir in reversed(nodes):
            stop_node(proc, temp_dir)
        for d in dirs:
            subprocess.run(["rm", "-rf", d], check=False)
