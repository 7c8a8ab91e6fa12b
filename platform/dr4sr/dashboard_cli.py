"""`dr4sr dashboard`: optuna-dashboard over a study's stored Optuna study, on 127.0.0.1.

    dr4sr dashboard runs/gamma              # the storage that runs/gamma/study.json names
    dr4sr dashboard runs/table3             # a `dr4sr grid` folder: its cells, one trial each
    dr4sr dashboard sqlite:///runs/gamma/optuna.db --port 8081
    dr4sr dashboard postgresql://user@db/optuna   # every study in a shared database

Grid sweeps and TPE studies alike: trials with their per-epoch validation, state (COMPLETE, PRUNED
when ASHA stopped them, FAIL), run folder and test metrics (user attrs). A grid folder's study is brought
up to date from the folder first (cells that ended while no tracking grid ran, e.g. an older grid).
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

from dr4sr.errors import ConfigError

HOST = "127.0.0.1"  # a local viewer: reach it from elsewhere through an SSH tunnel


def storage_url(target: str) -> str:
    """A study folder (study.json, or an optuna.db in it) -> its storage URL; a URL as it is."""
    from dr4sr.search.optuna_db import DB_FILE, open_storage, study_db

    path = Path(target)
    if (path / "grid.json").is_file():
        from dr4sr.search.grid_tracking import GridTracking

        tracking = GridTracking(path)
        added = tracking.record(tracker=False)["optuna"]
        if added:
            print(f"recorded {added} cell(s) of {path} in {tracking.db.url}", flush=True)
        url = tracking.db.url
    elif (path / "study.json").is_file():
        url = study_db(json.loads((path / "study.json").read_text()), path).url
    elif (path / DB_FILE).is_file():
        url = f"sqlite:///{(path / DB_FILE).resolve()}"
    elif "://" in target:
        url = target
    else:
        raise ConfigError(f"{target}: neither a study or grid folder (study.json, grid.json or {DB_FILE}) nor a "
                          f"storage URL")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"{url}: no such database (has the study started?)")
    open_storage(url)  # a bad URL fails here, with SQLAlchemy's message, not inside the server
    return url


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def cmd_dashboard(args) -> int:
    import optuna_dashboard

    from dr4sr.search.optuna_db import open_storage

    url = storage_url(args.target)
    if not port_free(args.port):
        raise ConfigError(f"port {args.port} on {HOST} is in use; pass --port N")
    print(f"optuna-dashboard for {url}: http://{HOST}:{args.port}/dashboard (Ctrl-C stops it)", flush=True)
    import signal

    # nothing to clean up: SIGTERM ends the server at once (a Python-level handler did not always fire
    # while the server waited in poll(), so the default action is used); Ctrl-C stops it as usual
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        optuna_dashboard.run_server(open_storage(url), host=HOST, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="optuna-dashboard over a study's stored Optuna study (127.0.0.1)")
    p.add_argument("target", metavar="STUDY_FOLDER|URL",
                   help="a `dr4sr tune` or `dr4sr grid` folder, or an Optuna storage URL")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)
