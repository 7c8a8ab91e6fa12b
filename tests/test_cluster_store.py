"""`dr4sr check-cluster` warns when the artifact store the nodes get cannot be shared: a node-local path on
a multi-node config, or a bucket that worker nodes have no instance profile to reach."""
from __future__ import annotations

from pathlib import Path

import pytest

from dr4sr.cli import main

REPO = Path(__file__).resolve().parent.parent
BUCKET = "s3://CHANGE-ME-dr4sr-bucket/artifacts"


def variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = (REPO / "cluster.yaml").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_uses_a_bucket_and_gets_no_warning(capsys):
    assert main(["check-cluster", str(REPO / "cluster.yaml")]) == 0
    assert capsys.readouterr().err == ""
    assert f"export DR4SR_ARTIFACTS={BUCKET}" in (REPO / "cluster.yaml").read_text()


def test_a_node_local_store_on_a_multi_node_config_warns_with_its_line(tmp_path, capsys):
    path = variant(tmp_path, (BUCKET, "/home/ubuntu/artifacts"))
    assert main(["check-cluster", str(path)]) == 0  # a warning, not an error
    err = capsys.readouterr().err
    assert f"{path}:" in err and "DR4SR_ARTIFACTS=/home/ubuntu/artifacts is a path local to each node" in err


def test_the_efs_option_is_shared_and_does_not_warn(tmp_path, capsys):
    assert main(["check-cluster", str(variant(tmp_path, (BUCKET, "/mnt/dr4sr/artifacts")))]) == 0
    assert capsys.readouterr().err == ""


def test_a_single_node_config_may_keep_a_local_store(tmp_path, capsys):
    path = variant(tmp_path, (BUCKET, "/home/ubuntu/artifacts"), ("max_workers: 12", "max_workers: 0"))
    assert main(["check-cluster", str(path)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("edit, words", [
    (("'export DR4SR_ARTIFACTS=" + BUCKET + "'\n", ""), "no command sets DR4SR_ARTIFACTS"),
    (("      IamInstanceProfile:                         # S3 access to the artifact store (see Storage above)\n"
      "        Arn: arn:aws:iam::CHANGE-ME:instance-profile/dr4sr-node\n", ""), "have no IamInstanceProfile"),
])
def test_stores_the_workers_cannot_share_warn(tmp_path, capsys, edit, words):
    assert main(["check-cluster", str(variant(tmp_path, edit))]) == 0
    assert words in capsys.readouterr().err
