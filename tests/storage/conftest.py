"""A real local S3 server (moto's ThreadedMotoServer) for the storage tests: one per session, one fresh
bucket per test, with the AWS environment pointed at it and a per-test cache folder."""
from __future__ import annotations

import uuid

import pytest

AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture(scope="session")
def s3_server():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """Env for this process and its subprocesses: endpoint, dummy credentials, an empty node cache."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "cache"))
    return s3_server


@pytest.fixture
def bucket(s3_env) -> str:
    """A fresh bucket; returns the store URI `s3://<bucket>/artifacts`."""
    import boto3

    name = f"dr4sr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}/artifacts"


@pytest.fixture
def s3(s3_env):
    import boto3

    return boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1")


@pytest.fixture
def objects(s3):
    """`objects(uri)`: {key relative to the URI's prefix: bytes} of every object under `s3://bucket/prefix`."""
    def read(uri: str) -> dict[str, bytes]:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for o in page.get("Contents", []):
                out[o["Key"][len(prefix) + 1:]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        return out
    return read
