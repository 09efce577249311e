"""Fixtures of the file store on S3-compatible object storage: a real S3 server (moto's server mode, on a free port of
this machine, for the whole run) and a bucket of each test's own that the app is configured to use.

`file_store` runs a test twice: with the local folders (the default) and with the bucket.
"""
import socket
import uuid
from dataclasses import dataclass

import pytest

REGION = "ap-northeast-1"
PREFIX = "deploy"


@dataclass
class Bucket:
    client: object
    name: str
    prefix: str

    def keys(self, area=None) -> list[str]:
        """The key of every object in one area of the deployment ("scans", …), or (None) of the whole bucket."""
        found, prefix = [], f"{self.prefix}/{area}/" if area else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            found += [item["Key"] for item in page.get("Contents", [])]
        return sorted(found)

    def body(self, key) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(app, s3_endpoint, monkeypatch):
    """The app's file store on the S3 server, in a new bucket; its credentials from the usual AWS variables."""
    import boto3
    for name, value in (("AWS_ACCESS_KEY_ID", "nanbyo-test"), ("AWS_SECRET_ACCESS_KEY", "nanbyo-test-secret"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    bucket = f"nanbyo-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    app.config.update(NANBYO_FILE_STORE_URL=f"s3://{bucket}/{PREFIX}", NANBYO_S3_ENDPOINT_URL=s3_endpoint,
                      NANBYO_S3_REGION=REGION)
    yield Bucket(client, bucket, PREFIX)
    app.config.update(NANBYO_FILE_STORE_URL="", NANBYO_S3_ENDPOINT_URL="", NANBYO_S3_REGION="")


@pytest.fixture(params=["local", "s3"])
def file_store(request, app):
    """The test runs with each kind of file store: None for the local folders, else the Bucket."""
    return request.getfixturevalue("s3_store") if request.param == "s3" else None
