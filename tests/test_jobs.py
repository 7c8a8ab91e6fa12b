"""jobs/train.py: argument checks, the working-dir upload, and one real `ray job submit` to a local head."""
from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from procs import pids_mentioning as _pids_mentioning

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: `ray` and `python` for the job entrypoint


def write_tiny_dataset(path: Path, users: int = 60, items: int = 40, seed: int = 0) -> Path:
    """Benchmark text format (`user item item ...`), lengths 5-12, every item id used at least once."""
    rng = random.Random(seed)
    lines = []
    for u in range(1, users + 1):
        seq = [rng.randint(1, items) for _ in range(rng.randint(5, 12))]
        if u <= items:
            seq[0] = u  # no gaps in the item vocabulary
        lines.append(" ".join(map(str, [u, *seq])))
    path.write_text("\n".join(lines) + "\n")
    return path


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- fast checks (no cluster)

def test_relative_out_is_rejected(tmp_path):
    proc = subprocess.run([sys.executable, "jobs/train.py", "--dataset", "beauty", "--out", "relative/dir"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert proc.returncode == 2
    assert "--out must be an absolute path" in proc.stderr


def test_an_s3_out_passes_the_jobs_path_check(tmp_path):
    """A study or grid folder in a bucket is reachable from every node: the job takes it (here only the
    argument check runs: the unreachable endpoint then stops the dry run, which joins no Ray, with one line)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_MAX_ATTEMPTS": "1",
           "DR4SR_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "jobs/grid.py", "--out", "s3://b/grid", "--dry-run"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)
    assert "--out must be" not in proc.stderr
    assert proc.returncode == 2 and "--out s3://b/grid: cannot list it" in proc.stderr, proc.stderr[-2000:]


def test_working_dir_upload_is_small_and_excludes_venv_and_artifacts():
    """Pack the repo with Ray's own working_dir packer: .gitignore/.rayignore keep .venv, .git, runs out."""
    from ray._private.runtime_env.packaging import _zip_files

    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "pkg.zip")
        _zip_files(str(REPO), [], out, include_gitignore=True)
        names = zipfile.ZipFile(out).namelist()
        size = os.path.getsize(out)
    top = {n.split("/")[0] for n in names}
    assert "jobs/train.py" in names and "platform/dr4sr/cli.py" in names
    assert not top & {".venv", ".git", "artifacts", "runs", "out"}, top
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pt", ".parquet"))]
    assert size < 5 * 2**20, f"working dir upload is {size / 2**20:.1f} MiB"


def _import_entrypoints():
    """jobs/train.py and jobs/tune.py as modules (tune.py imports `train` from its own folder)."""
    import importlib

    sys.path.insert(0, str(REPO / "jobs"))
    try:
        return importlib.import_module("train"), importlib.import_module("tune")
    finally:
        sys.path.remove(str(REPO / "jobs"))


def test_tune_and_grid_jobs_announce_themselves(tmp_path, monkeypatch, capsys):
    """jobs/tune.py and jobs/grid.py once printed `jobs/train.py: connected to Ray ...`."""
    import ray

    from dr4sr import cli

    jobs_train, jobs_tune = _import_entrypoints()
    monkeypatch.setattr(jobs_train, "cluster_address", lambda: "10.0.0.1:6379")  # never a real cluster
    monkeypatch.setattr(ray, "init", lambda **kw: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.setattr(cli, "main", lambda argv: 0)  # the command itself is tested elsewhere
    space = str(REPO / "search_spaces/gamma_sweep.yaml")
    assert jobs_tune.main(["--space", space, "--out", str(tmp_path / "s")]) == 0
    assert jobs_tune.main(["--out", str(tmp_path / "g")], command="grid") == 0
    out = capsys.readouterr().out
    assert "jobs/tune.py: connected to Ray at 10.0.0.1:6379" in out
    assert "jobs/grid.py: connected to Ray at 10.0.0.1:6379" in out and "jobs/train.py" not in out

    def refused(**kw):
        raise ConnectionError("refused")

    monkeypatch.setattr(ray, "init", refused)
    assert jobs_tune.main(["--out", str(tmp_path / "g")], command="grid") == 0
    assert "jobs/grid.py: no Ray cluster at 10.0.0.1:6379 (refused); running locally" in capsys.readouterr().err


# ---------------------------------------------------------------- token auth on a laptop's local Ray

LOCAL_RAY = """\
import sys, ray
ray.init(num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=int(sys.argv[1]))
print("ready", flush=True)
sys.stdin.read()  # until the test closes stdin
ray.shutdown()
"""


def _get(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.mark.slow  # starts a Ray with its dashboard: 15-60 s on the shared 2-core machine
def test_local_dashboard_needs_the_token_from_ray_get_auth_token(tmp_path):
    """What `dr4sr tune` (or any local ray.init) starts on a laptop: Ray 2.60 turns token auth on and
    writes a token to ~/.ray/auth_token. The jobs API answers only with it; the browser sends it once
    to /api/authenticate and then holds it in a cookie. HOME is a temp folder: the real token is untouched."""
    (port,) = free_ports(1)
    assert port != 8265
    home, temp = tmp_path / "home", tempfile.mkdtemp(prefix="dr4sr-rt-", dir="/tmp")
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # RAY_AUTH_MODE unset: the default
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=temp)
    log = open(tmp_path / "ray.log", "w")  # Ray's warnings (e.g. "Token authentication is enabled")
    proc = subprocess.Popen([sys.executable, "-c", LOCAL_RAY, str(port)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        if proc.stdout.readline().strip() != "ready":  # EOF: ray.init failed
            pytest.fail(f"local Ray did not start:\n{(tmp_path / 'ray.log').read_text()[-3000:]}")
        token = (home / ".ray" / "auth_token").read_text().strip()
        printed = subprocess.run([str(BIN / "ray"), "get-auth-token"], env=env, capture_output=True, text=True,
                                 timeout=60)
        assert printed.stdout.strip() == token  # what a user pastes into the dashboard's token page
        status, body, _ = _get(f"{base}/api/jobs/", {"Authorization": f"Bearer {token}"})
        assert status == 200 and body.startswith("["), body[:300]
        assert _get(f"{base}/api/jobs/")[0] == 401  # no token
        assert _get(f"{base}/api/jobs/", {"Authorization": "Bearer not-the-token"})[0] == 403
        # the browser page posts the token once and gets an HttpOnly cookie for later requests
        req = urllib.request.Request(f"{base}/api/authenticate", method="POST", data=b"",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            cookie = resp.headers["Set-Cookie"].split(";")[0]
        assert cookie == f"ray-authentication-token={token}"
        assert _get(f"{base}/api/jobs/", {"Cookie": cookie})[0] == 200
        # the `ray job` CLI reads the same ~/.ray/auth_token once RAY_AUTH_MODE=token
        listed = subprocess.run([str(BIN / "ray"), "job", "list", "--address", base],
                                env={**env, "RAY_AUTH_MODE": "token"},
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _pids_mentioning(temp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
        log.close()


# ---------------------------------------------------------------- a real local head + `ray job submit`

@pytest.fixture(scope="module")
def ray_head():
    """A private head node: own temp dir, own ports, own auth token; stopped by pid, never by `ray stop`.

    Token auth (Ray 2.60): `ray start` turns token auth on by itself when a token already exists
    (e.g. ~/.ray/auth_token, which every local `ray.init()` creates since 2.59), and `ray job submit`
    then needs it. Rather than depend on what is in $HOME, this test sets it explicitly:
    RAY_AUTH_MODE=token plus a fresh RAY_AUTH_TOKEN (highest precedence, nothing written to disk) in
    the environment of `ray start` and of every `ray job` CLI call, which send it as a bearer token.

    Teardown: `ray stop` kills every Ray process on the machine by name, including clusters that other
    tests or people run at the same time. So the head runs under `ray start --block`, whose SIGTERM
    handler shuts down exactly the processes of this node; leftovers are killed by pid.
    """
    gcs, dash, client, agent_http, agent_grpc, metrics, rt_agent = free_ports(7)
    temp_dir = tempfile.mkdtemp(prefix="dr4sr-ray-", dir="/tmp")  # short: Ray's unix sockets live here
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.pop("DR4SR_DATA_DIR", None)  # the job must not need it: the dataset is a path
    log = open(os.path.join(temp_dir, "ray-start.log"), "w")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
         f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
         f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
         f"--runtime-env-agent-port={rt_agent}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited with {head.returncode}:\n{Path(log.name).read_text()[-3000:]}")
            req = urllib.request.Request(f"{address}/api/version",
                                         headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
            try:
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                pytest.fail(f"dashboard did not come up:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(1)
        yield {"address": address, "env": env, "temp_dir": temp_dir}
    finally:
        _stop_head(head, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_head(head: subprocess.Popen, temp_dir: str) -> None:
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)  # Node's SIGTERM handler kills raylet, GCS, dashboard, workers
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
    # safety net: processes of this node still alive (their command lines name our private temp dir)
    for pid in _pids_mentioning(temp_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass




def _ray_job(args: list[str], head: dict, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(BIN / "ray"), "job", *args], cwd=REPO, env=head["env"], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # say how far the job got, not only that it ran long
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"`ray job {' '.join(args[:1] + args[-8:])}` ran past {timeout:.0f} s; its last output:\n"
                    f"{out[-3000:]}")


@pytest.mark.slow  # 30-80 s on the shared 2-core machine (head start, upload, driver import, 2 epochs)
def test_ray_job_submit_smoke(ray_head, tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny.txt")
    out = tmp_path / "run"
    sid = f"dr4sr-test-{secrets.token_hex(4)}"
    started = time.time()
    proc = _ray_job(["submit", "--address", ray_head["address"], "--submission-id", sid, "--working-dir", ".",
                     "--", "python", "jobs/train.py", "--smoke-test", "--dataset", str(data),
                     "--backbone", "sasrec", "--out", str(out)], ray_head, timeout=400)
    logs = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, logs
    assert "connected to Ray" in proc.stdout, logs  # the driver joined the cluster, not a new local Ray
    # the driver ran the uploaded copy of platform/dr4sr (unpacked under the head's temp dir), not the repo's
    assert f"dr4sr from {ray_head['temp_dir']}" in proc.stdout, logs
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head["address"],
                                 headers={"Authorization": f"Bearer {ray_head['env']['RAY_AUTH_TOKEN']}"})
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED
    out = tmp_path / "run-smoke"  # --smoke-test output goes to its own folder
    assert (out / "metrics.json").is_file() and (out / "user_metrics.parquet").is_file()
    print(f"ray job submit smoke: {time.time() - started:.1f} s")


@pytest.mark.slow  # needs the head from the fixture above
def test_ray_job_submit_without_token_is_refused(ray_head):
    """The fixture's head runs with token auth: the same `ray job list` fails without the token and
    succeeds with it, and the job API answers 401 without a token and 403 with a wrong one (exit codes and
    HTTP statuses, not the wording of Ray's messages, which is Ray's to change)."""
    token = ray_head["env"]["RAY_AUTH_TOKEN"]
    env = {k: v for k, v in ray_head["env"].items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    env["RAY_AUTH_MODE"] = "disabled"  # a client that sends no token
    args = [str(BIN / "ray"), "job", "list", "--address", ray_head["address"]]
    refused = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    allowed = subprocess.run(args, cwd=REPO, env=ray_head["env"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-2000:]
    jobs_api = f"{ray_head['address']}/api/jobs/"
    assert _get(jobs_api)[0] == 401
    assert _get(jobs_api, {"Authorization": f"Bearer {'0' * 64}"})[0] == 403
    assert _get(jobs_api, {"Authorization": f"Bearer {token}"})[0] == 200


# -------------------------------------------------------- studies and the grid as jobs (jobs/tune.py, jobs/grid.py)

TINY_SPACE = """\
dataset: beauty            # replaced by --dataset
backbone: sasrec
variant: dr4sr
set: {regen.k: 2}
search: {kind: grid}
dimensions:
  regenerate.gamma: {grid: [0.0, 1.0]}
"""


def _submit(head: dict, entry: list[str], timeout: float) -> subprocess.CompletedProcess:
    sid = f"dr4sr-test-{secrets.token_hex(4)}"
    proc = _ray_job(["submit", "--address", head["address"], "--submission-id", sid, "--working-dir", ".",
                     "--runtime-env-json", '{"env_vars": {"RAY_TRAIN_ENABLE_STATE_TRACKING": "1"}}',
                     "--", "python", *entry], head, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


# about 47 s on a quiet machine; beside a 2-thread pre-training (load 5 on the 2 cores) the study alone ran
# past 500 s, every stage ~10x slower (OpenMP threads contending), so the limits leave room for a busy machine
@pytest.mark.slow
def test_tune_and_grid_jobs_smoke(ray_head, tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny.txt")
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE)
    study, grid = tmp_path / "study", tmp_path / "grid"
    proc = _submit(ray_head, ["jobs/tune.py", "--space", str(space), "--dataset", str(data), "--out", str(study),
                              "--store", str(tmp_path / "store"), "--smoke-test"], timeout=1200)
    assert "jobs/tune.py: connected to Ray" in proc.stdout, proc.stdout[-4000:]
    assert "smoke test (4 epochs): not a result" in proc.stdout and "2 of 2 trials finished" in proc.stdout
    import csv

    rows = list(csv.DictReader(open(study / "results.csv")))
    assert sorted(float(r["regenerate.gamma"]) for r in rows) == [0.0, 1.0]
    assert all(r["status"] == "finished" for r in rows) and sum(r["best"] == "1" for r in rows) == 1
    assert (study / "sweep_regenerate_gamma.png").is_file()
    proc = _submit(ray_head, ["jobs/grid.py", "--datasets", str(data), "--backbones", "sasrec", "--variants",
                              "backbone", "pattern", "--out", str(grid), "--store", str(tmp_path / "store"),
                              "--smoke-test"], timeout=900)
    assert "[grid] 2 runs in" in proc.stdout and "jobs/grid.py: connected to Ray" in proc.stdout, proc.stdout[-4000:]
    lines = (grid / "table3.csv").read_text().splitlines()
    assert lines[0].startswith("# SMOKE TEST")  # the smoke label heads the grid's table
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert {(r["dataset"], r["backbone"], r["variant"], r["seeds"]) for r in rows} == \
        {("tiny", "sasrec", "backbone", "1"), ("tiny", "sasrec", "pattern", "1")}
    assert (grid / "table3.tex").is_file() and (grid / "table3.md").is_file()
