"""S3Store's retry and error handling against a scripted S3-like HTTP server on loopback."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voila_publisher.sync.s3.client import S3Store
from voila_publisher.sync.store import StoreError

SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


class ScriptedS3:
    """Answers each request with the next (status, body, headers) of ``script``; records requests."""

    def __init__(self, script):
        self.script = list(script)
        self.requests: list[tuple[str, str, dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                status, payload, headers = outer.script.pop(0) if outer.script else (500, b"", {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    servers = []

    def start(script):
        server = ScriptedS3(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def make_store(server, attempts=4, sleeps=None):
    return S3Store(
        "bucket", endpoint_url=server.url, max_attempts=attempts, sleep=(sleeps.append if sleeps is not None else lambda s: None)
    )


def test_put_retries_throttling_with_backoff_then_succeeds(scripted):
    data = b"notebook"
    md5 = hashlib.md5(data)
    server = scripted([(503, SLOW_DOWN, {}), (500, b"", {}), (200, b"", {"ETag": f'"{md5.hexdigest()}"'})])
    sleeps = []
    assert make_store(server, sleeps=sleeps).put("users/ana/nb.ipynb", data, md5.digest()) == md5.hexdigest()
    assert len(server.requests) == 3 and len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.6
    method, path, headers, body = server.requests[-1]
    assert (method, path, body) == ("PUT", "/bucket/users/ana/nb.ipynb", data)
    assert headers["Content-MD5"] and headers["x-amz-meta-md5"] == md5.hexdigest()
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "example-secret" not in str(headers)


def test_retries_are_bounded(scripted):
    server = scripted([(503, SLOW_DOWN, {})] * 5)
    with pytest.raises(StoreError) as info:
        make_store(server, attempts=2).put("k", b"x", hashlib.md5(b"x").digest())
    assert len(server.requests) == 2 and info.value.reason == "SlowDown"


@pytest.mark.parametrize(
    "status, code, reason, fatal",
    [
        (404, "NoSuchBucket", "no-such-bucket", True),
        (403, "AccessDenied", "access-denied", True),
        (403, "InvalidAccessKeyId", "bad-credentials", True),
        (403, "SignatureDoesNotMatch", "bad-credentials", True),
        (400, "BadDigest", "checksum-mismatch", False),
    ],
)
def test_errors_are_classified_without_retrying(scripted, status, code, reason, fatal):
    server = scripted([(status, f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode(), {})])
    with pytest.raises(StoreError) as info:
        make_store(server).put("k", b"x", hashlib.md5(b"x").digest())
    assert (info.value.reason, info.value.fatal) == (reason, fatal)
    assert len(server.requests) == 1
    assert "example-secret" not in info.value.message


def test_listing_decodes_keys_and_follows_pages(scripted):
    page1 = (
        b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        b"<NextContinuationToken>t2</NextContinuationToken>"
        b"<Contents><Key>p/r%C3%A9sum%C3%A9+final.ipynb</Key><Size>3</Size><ETag>&quot;ABC&quot;</ETag></Contents>"
        b"</ListBucketResult>"
    )
    page2 = (
        b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
        b"<Contents><Key>p/a%2Bb.txt</Key><Size>0</Size><ETag>&quot;d41d&quot;</ETag></Contents></ListBucketResult>"
    )
    server = scripted([(200, page1, {}), (200, page2, {})])
    objects = make_store(server).list("p/")
    assert {k: (o.size, o.etag) for k, o in objects.items()} == {"p/résumé final.ipynb": (3, "abc"), "p/a+b.txt": (0, "d41d")}
    assert "continuation-token=t2" in server.requests[1][1]


def test_bodies_bound_by_content_md5_skip_the_sha256_payload_hash(scripted):
    server = scripted([(200, b"", {"ETag": '"x"'}), (200, b"<ListBucketResult/>", {})])
    store = make_store(server)
    store.put("k", b"data", hashlib.md5(b"data").digest())
    store.list("p/")
    put_headers, list_headers = server.requests[0][2], server.requests[1][2]
    assert put_headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert "content-md5" in put_headers["Authorization"].lower()  # the MD5 header is signed
    assert list_headers["X-Amz-Content-SHA256"] == hashlib.sha256(b"").hexdigest()


def test_aws_addressing(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert S3Store("notebooks", region="eu-west-1")._base == "https://notebooks.s3.eu-west-1.amazonaws.com/"
    assert S3Store("team.notebooks", region="eu-west-1")._base == "https://s3.eu-west-1.amazonaws.com/team.notebooks/"
    assert S3Store("nb", endpoint_url="http://rgw:8080/")._base == "http://rgw:8080/nb/"


def test_put_compares_the_etag_with_the_md5_only_where_the_etag_is_one(scripted):
    """SSE-KMS and SSE-C objects get ETags that are not the MD5 (issue 16, item 7); the server
    has checked Content-MD5 all the same. Elsewhere a differing ETag is a corrupted upload."""
    data = b"notebook"
    md5 = hashlib.md5(data)
    opaque = hashlib.md5(b"opaque").hexdigest()
    server = scripted([
        (200, b"", {"ETag": f'"{opaque}"', "x-amz-server-side-encryption": "aws:kms"}),
        (200, b"", {"ETag": f'"{opaque}"', "x-amz-server-side-encryption-customer-algorithm": "AES256"}),
        (200, b"", {"ETag": f'"{opaque}"', "x-amz-server-side-encryption": "AES256"}),
        (200, b"", {"ETag": f'"{opaque}"'}),
    ])
    store = make_store(server)
    assert store.put("k", data, md5.digest()) == opaque
    assert store.put("k", data, md5.digest()) == opaque
    for _ in range(2):
        with pytest.raises(StoreError) as e:
            store.put("k", data, md5.digest())
        assert e.value.reason == "checksum-mismatch"
    assert all(headers["Content-MD5"] for _, _, headers, _ in server.requests)


def test_head_md5_never_takes_a_kms_etag_for_the_md5(scripted):
    plain = hashlib.md5(b"x").hexdigest()
    server = scripted([
        (200, b"", {"ETag": f'"{plain}"', "x-amz-server-side-encryption": "aws:kms"}),
        (200, b"", {"ETag": f'"{plain}"', "x-amz-server-side-encryption": "aws:kms", "x-amz-meta-md5": "AB" * 16}),
        (200, b"", {"ETag": f'"{plain}"'}),
    ])
    store = make_store(server)
    assert [store.head_md5("k") for _ in range(3)] == [None, "ab" * 16, plain]
