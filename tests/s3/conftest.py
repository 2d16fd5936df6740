"""A real S3 server (s3rver, `tests/s3/server.py`) on 127.0.0.1 for the object-store tests, and the bundled sample
converted into its bucket.

The S3 tests fail (they are not skipped) when s3rver is missing: `make test` installs it. Deselect them with
`-m "not s3"` on a machine without Node.js.
"""
import os
import time
import types

import pytest

from tests.s3.server import CREDENTIALS, REGION, S3rver

BUCKET = "dnax-test"
SIZE_LIMIT = 1 << 17  # ~126 windows of 1024 a shard: `valid` (488 windows) spans 4 shards, `train` 28


def pytest_configure(config):
    config.addinivalue_line("markers", "s3: needs s3rver (Node.js); `make test` installs it")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """s3rver on a free 127.0.0.1 port with a bucket; the AWS/S3 environment streaming and boto3 read points at it
    (and nowhere else: no AWS config files, no instance metadata). `s3.server.stop()/start()` simulate an outage."""
    root = tmp_path_factory.mktemp("s3rver")
    server = S3rver(root / "data")
    try:
        start_s, problem = server.start(), None
    except RuntimeError as e:
        problem = str(e)
    if problem:  # a failure, not a skip: `make test` installs s3rver
        pytest.fail(problem, pytrace=False)
    env = {"S3_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": CREDENTIALS,
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS, "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(root / "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-creds"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        import boto3

        t0 = time.perf_counter()
        client = boto3.client("s3", endpoint_url=server.endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield types.SimpleNamespace(server=server, endpoint=server.endpoint, bucket=BUCKET, client=client,
                                    start_s=start_s, bucket_s=time.perf_counter() - t0)
    server.stop()


def keys(s3, prefix: str) -> list[str]:
    """Every object key under `prefix` in the test bucket."""
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="session")
def sample_s3(s3, tmp_path_factory):
    """The bundled sample at seq_len 1024 in small shards, converted straight into `s3://dnax-test/sample_1024`
    (`data_tools.fasta_to_mds`); `local` is the conversion's local staging copy, the reference for every read."""
    from data_tools.fasta_to_mds import convert_sample

    local = tmp_path_factory.mktemp("staging") / "sample_1024"
    url = f"s3://{s3.bucket}/sample_1024"
    t0 = time.perf_counter()
    summary = convert_sample(url, 1024, progress=False, size_limit=SIZE_LIMIT, local_staging=local)
    return types.SimpleNamespace(url=url, local=local, summary=summary, seconds=time.perf_counter() - t0)
