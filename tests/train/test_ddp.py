"""DDP correctness: 2 Ray Train workers (gloo) follow the single-process loss curve for the same global batch."""
import numpy as np

from dr4sr.config import parse_overrides
from dr4sr.train.runner import build_run_config, train_stage

# CE (no sampled negatives) and no dropout: the only differences left are how the global batch is
# split (each rank averages its own positions) and float reduction order.
SETTINGS = ["model.dropout=0.0", "train.loss=ce", "train.batch_size=32", "train.max_epochs=5",
            "train.patience=10", "train.lr=0.003"]
TOLERANCE = 0.03  # relative, per epoch


def test_two_workers_follow_single_process_curve(tiny_dataset, tmp_path, ray_session, capsys):
    cfg = build_run_config("sasrec", str(tiny_dataset), parse_overrides(SETTINGS))
    single = train_stage(cfg, tmp_path / "one", log=lambda *_: None)
    capsys.readouterr()
    ddp = train_stage(cfg, tmp_path / "two", workers=2, log=lambda *_: None)
    # each epoch's line once (rank 0 only), on the driver's stderr, without Ray's "(RayTrainWorker ...)" prefix
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "| loss " in ln]
    assert [ln.split("|")[0].split() for ln in lines] == [["epoch", str(e)] for e in range(5)], lines
    a = np.array([h["loss"] for h in single["history"]])
    b = np.array([h["loss"] for h in ddp["history"]])
    assert ddp["world_size"] == 2 and len(a) == len(b) == 5
    assert np.all(np.abs(a - b) / a < TOLERANCE), (a, b)
    assert a[-1] < a[0] and b[-1] < b[0]
    # evaluation is sharded over ranks and summed: every user is ranked exactly once
    assert set(ddp["test"]) == set(single["test"])
