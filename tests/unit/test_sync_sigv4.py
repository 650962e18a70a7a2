"""Our SigV4 signer gives the same signature as botocore's for every request shape S3Store sends."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from voila_publisher.sync.s3.client import _query, _quote_key
from voila_publisher.sync.s3.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, canonical_query, host_header, sign

BASE = "http://127.0.0.1:8333/my-bucket/"
CASES = [
    (
        "PUT",
        "users/ana/données été/a+b & c%20d.ipynb",
        None,
        b"x" * 100,
        {"Content-MD5": "q83vEjRWeJA=", "Content-Type": "application/octet-stream", "x-amz-meta-md5": "ab" * 16},
    ),
    (
        "GET",
        "",
        {"list-type": "2", "prefix": "users/ana b/", "max-keys": "1000", "encoding-type": "url", "continuation-token": "a/b+c=="},
        b"",
        {},
    ),
    ("POST", "users/ana/big.bin", {"uploads": None}, b"", {"Content-Type": "application/octet-stream"}),
    ("POST", "users/ana/big.bin", {"uploadId": "2~abc/def"}, b"<CompleteMultipartUpload/>", {"Content-Type": "application/xml"}),
    ("HEAD", "users/ana/~tilde.txt", None, b"", {}),
    (
        "PUT",
        "users/ana/big.bin",
        None,
        b"",
        {"x-amz-copy-source": "/my-bucket/users/ana/big.bin", "x-amz-copy-source-if-match": '"abc-2"', "x-amz-metadata-directive": "REPLACE"},
    ),
]


@pytest.mark.parametrize("token", [None, "session-token"], ids=["keys", "session"])
@pytest.mark.parametrize("method,key,params,body,headers", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_signature_matches_botocore(method, key, params, body, headers, token):
    url = BASE + _quote_key(key) + ("?" + _query(params) if params else "")
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    if "Content-MD5" in headers:
        req.context["client_config"] = SimpleNamespace(s3={"payload_signing_enabled": False})
    S3SigV4Auth(credentials.get_frozen_credentials(), "s3", "eu-west-2").add_auth(req)
    when = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    payload = UNSIGNED_PAYLOAD if "Content-MD5" in headers else hashlib.sha256(body).hexdigest()
    parts = urlsplit(url)
    ours = sign(
        method, host_header(parts.scheme, parts.netloc), parts.path, canonical_query(params), headers, payload,
        "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token, "eu-west-2", now=when,
    )
    assert ours["X-Amz-Content-SHA256"] == req.headers["X-Amz-Content-SHA256"]
    assert ours["Authorization"] == req.headers["Authorization"]


def test_host_header_drops_only_default_ports():
    assert host_header("http", "127.0.0.1:8333") == "127.0.0.1:8333"
    assert host_header("http", "s3.local:80") == "s3.local"
    assert host_header("https", "bucket.s3.us-east-1.amazonaws.com") == "bucket.s3.us-east-1.amazonaws.com"
    assert host_header("https", "s3.local:443") == "s3.local"
    assert EMPTY_SHA256 == hashlib.sha256(b"").hexdigest()
