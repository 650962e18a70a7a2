"""The S3 requests a sync needs, signed with SigV4 (``sigv4.py``) over one urllib3 pool.

Why not ``boto3.client("s3")`` for every request: a sync of many small notebooks is bound
by per-request client overhead. botocore's full request pipeline (model loading, parameter
validation, event hooks, response parsing) costs ~2 ms of CPU per PUT here, which kept 1,000
small files at ~2.8 s; signing each request directly and sending over a shared urllib3
pool does it in ~1.1 s and makes the command start faster (no service model to load).
Credentials come from a file the node agent rewrites (``credentials.py``, per-user and
short-lived, see docs/security.md) when one is given, else from the standard boto3 chain
(environment, shared files), refreshed as botocore refreshes them.

Every request is retried with exponential backoff on throttling, 5xx and network errors.
Errors carry a short ``reason`` and a message that names what to fix, never a secret.
"""

from __future__ import annotations

import hashlib
import random
import time
import xml.etree.ElementTree as ET
from typing import Callable
from urllib.parse import quote, unquote_plus, urlsplit

import urllib3

from voila_publisher.sync.hashing import etag_is_digest, is_plain_md5_etag, md5_b64
from voila_publisher.sync.s3.sigv4 import UNSIGNED_PAYLOAD, canonical_query, host_header, sign
from voila_publisher.sync.s3.multipart import MultipartUploader
from voila_publisher.sync.store import RemoteObject, StoreError


RETRYABLE_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed"}
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}


def _xml_children(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    for el in root.iter():
        el.tag = el.tag.rsplit("}", 1)[-1]  # drop the S3 namespace
    return root


def _quote_key(key: str) -> str:
    return quote(key, safe="/~")


def _query(params: dict) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}" if v is not None else quote(k, safe="-_.~")
        for k, v in sorted(params.items())
    )


class S3Store:
    """One bucket on one endpoint. Thread-safe: one instance serves all transfer threads."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        pool_size: int = 32,
        max_attempts: int = 4,
        session=None,
        credentials=None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import boto3  # the credential chain; imported here so that planning code never needs it

        self.bucket = bucket
        self.region = region or "us-east-1"
        self.endpoint_url = (endpoint_url or "").rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._session = session or boto3.Session(region_name=self.region)
        self._credentials = None
        self._provider = credentials  # a FileCredentials, re-read when the node agent replaces it
        if self.endpoint_url:
            self._base = f"{self.endpoint_url}/{bucket}/"  # path style: what S3-compatible stores expect
        elif "." in bucket:  # a dotted name breaks the wildcard TLS certificate of virtual hosts
            self._base = f"https://s3.{self.region}.amazonaws.com/{bucket}/"
        else:
            self._base = f"https://{bucket}.s3.{self.region}.amazonaws.com/"
        base = urlsplit(self._base)
        self._host = host_header(base.scheme, base.netloc)
        self._base_path = base.path
        self.http = urllib3.PoolManager(
            num_pools=4,
            maxsize=max(1, pool_size),
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=5.0, read=120.0),
        )

    @property
    def where(self) -> str:
        return f"{self.endpoint_url or 'AWS S3'} (region {self.region})"

    # -- signing and sending ---------------------------------------------------------------

    def _frozen_credentials(self):
        if self._provider is not None:
            return self._provider.frozen()
        if self._credentials is None:
            self._credentials = self._session.get_credentials()
            if self._credentials is None:
                raise StoreError(
                    "no-credentials",
                    "no AWS credentials found: attach an instance profile, or set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for an S3-compatible store",
                    fatal=True,
                )
        return self._credentials.get_frozen_credentials()

    def request(self, method: str, key: str = "", params: dict | None = None, body: bytes = b"", headers=None, *, stream=False):
        """Send one signed request, retrying transient failures; returns the urllib3 response.

        A body sent with a signed Content-MD5 header needs no SHA-256 payload signature as well
        (UNSIGNED-PAYLOAD): the header already binds the content to the signature and the server
        checks it, so every large file is spared a second full hash on both sides.
        """
        quoted = _quote_key(key)
        url = self._base + quoted
        if params:
            url += "?" + _query(params)
        headers = dict(headers or {})
        payload_hash = UNSIGNED_PAYLOAD if "Content-MD5" in headers else hashlib.sha256(body).hexdigest()
        last: StoreError | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                self._sleep(min(8.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.5))
            creds = self._frozen_credentials()
            signed = sign(
                method, self._host, self._base_path + quoted, canonical_query(params), headers, payload_hash,
                creds.access_key, creds.secret_key, creds.token, self.region,
            )
            try:
                resp = self.http.request(
                    method, url, body=body or None, headers={**headers, **signed}, preload_content=not stream, redirect=False
                )
            except urllib3.exceptions.HTTPError as e:
                last = StoreError(
                    "unreachable",
                    f"cannot reach the S3 endpoint {self.where}: {type(e).__name__}. "
                    "Check c.BucketSync.endpoint_url / $HYBRID_S3_ENDPOINT_URL and the network",
                    fatal=True,
                )
                continue
            if resp.status < 300:
                return resp
            error = self._error(resp, method, key)
            if resp.status >= 500 or error.reason in RETRYABLE_CODES:
                last = error
                continue
            if error.reason == "bad-credentials" and self._provider is not None and self._provider.reload():
                last = error  # signed just before the node agent replaced them: retry with the new ones
                continue
            raise error
        raise last

    def _error(self, resp, method: str, key: str) -> StoreError:
        body = resp.data  # reads a streamed body too
        resp.release_conn()
        code, message = "", ""
        if body:
            try:
                root = _xml_children(body)
                code = root.findtext("Code") or ""
                message = root.findtext("Message") or ""
            except ET.ParseError:
                pass
        if not code:
            code = {403: "AccessDenied", 404: "NoSuchKey" if key else "NoSuchBucket"}.get(resp.status, f"HTTP{resp.status}")
        target = f"s3://{self.bucket}/{key}"
        if code == "NoSuchBucket":
            return StoreError(
                "no-such-bucket",
                f"bucket {self.bucket!r} does not exist at {self.where}: create it or fix c.BucketSync.bucket / $HYBRID_SYNC_BUCKET",
                fatal=True,
                status=resp.status,
            )
        if code in CREDENTIAL_CODES:
            return StoreError(
                "bad-credentials",
                f"the S3 endpoint {self.where} rejected the credentials ({code}): check the access key, secret and region",
                fatal=True,
                status=resp.status,
            )
        if code in ("AccessDenied", "AllAccessDisabled"):
            return StoreError(
                "access-denied",
                f"access denied: {method} {target} is not allowed for these credentials; the bucket policy or IAM role must allow it",
                fatal=True,
                status=resp.status,
            )
        if code in ("BadDigest", "InvalidDigest"):
            return StoreError(
                "checksum-mismatch",
                f"{target}: the content did not match its checksum (the file changed while it was sent, or was corrupted in transit)",
                status=resp.status,
            )
        return StoreError(code, f"{method} {target} failed: {code} {message}".strip(), status=resp.status)

    # -- the operations a sync uses ------------------------------------------------------------

    def list(self, prefix: str) -> dict[str, RemoteObject]:
        """Every object under ``prefix`` (ListObjectsV2, paginated)."""
        objects: dict[str, RemoteObject] = {}
        token = None
        while True:
            params = {"list-type": "2", "prefix": prefix, "max-keys": "1000", "encoding-type": "url"}
            if token:
                params["continuation-token"] = token
            root = _xml_children(self.request("GET", params=params).data)
            encoded = (root.findtext("EncodingType") or "").lower() == "url"
            for item in root.iter("Contents"):
                key = item.findtext("Key") or ""
                if encoded:
                    key = unquote_plus(key)  # S3 encodes spaces as "+", like a form
                etag = (item.findtext("ETag") or "").strip('"').lower()
                objects[key] = RemoteObject(int(item.findtext("Size") or 0), etag)
            if (root.findtext("IsTruncated") or "").lower() != "true":
                return objects
            token = root.findtext("NextContinuationToken")
            if not token:
                return objects

    def head_md5(self, key: str) -> str | None:
        """The content MD5: the one this tool stores in object metadata, else the ETag when the
        response shows it is the MD5 (not SSE-KMS or SSE-C); None when neither tells."""
        try:
            resp = self.request("HEAD", key)
        except StoreError as e:
            if e.status == 404:
                return None
            raise
        if resp.headers.get("x-amz-meta-md5"):
            return resp.headers["x-amz-meta-md5"].lower()
        etag = (resp.headers.get("ETag") or "").strip('"').lower()
        return etag if is_plain_md5_etag(etag) and etag_is_digest(resp.headers) else None

    def put(self, key: str, data: bytes, md5_digest: bytes) -> str:
        """Upload ``data`` in one request; the server checks it against its MD5. Returns the ETag.

        The ETag is compared with the MD5 as well, but only where it is one: SSE-KMS and SSE-C
        objects get ETags that are not (Content-MD5 is checked by the server all the same).
        """
        headers = {
            "Content-MD5": md5_b64(md5_digest),
            "Content-Type": "application/octet-stream",
            "x-amz-meta-md5": md5_digest.hex(),
        }
        resp = self.request("PUT", key, body=data, headers=headers)
        etag = (resp.headers.get("ETag") or "").strip('"').lower()
        if etag_is_digest(resp.headers) and is_plain_md5_etag(etag) and etag != md5_digest.hex():
            raise StoreError("checksum-mismatch", f"{key}: the store answered ETag {etag} for content with MD5 {md5_digest.hex()}")
        return etag

    def create_multipart(self, key: str, md5_hex: str | None = None) -> str:
        headers = {"Content-Type": "application/octet-stream"}
        if md5_hex:
            headers["x-amz-meta-md5"] = md5_hex
        resp = self.request("POST", key, params={"uploads": None}, headers=headers)
        upload_id = _xml_children(resp.data).findtext("UploadId")
        if not upload_id:
            raise StoreError("s3-error", f"s3://{self.bucket}/{key}: the store returned no multipart upload id")
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes, md5_digest: bytes) -> str:
        resp = self.request(
            "PUT", key, params={"partNumber": str(number), "uploadId": upload_id}, body=data, headers={"Content-MD5": md5_b64(md5_digest)}
        )
        return resp.headers.get("ETag") or ""

    def complete_multipart(self, key: str, upload_id: str, part_etags: list[str], expected_etag: str = "") -> str:
        """Complete the upload; its ETag must be ``expected_etag`` (MD5 of the part MD5s) where
        the response shows the ETag is derived from the content (not SSE-KMS or SSE-C)."""
        parts = "".join(f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>" for i, etag in enumerate(part_etags, 1))
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        resp = self.request("POST", key, params={"uploadId": upload_id}, body=body, headers={"Content-Type": "application/xml"})
        root = _xml_children(resp.data)
        if root.tag == "Error":  # S3 may report a failed completion inside a 200 response
            raise StoreError(root.findtext("Code") or "s3-error", f"s3://{self.bucket}/{key}: {root.findtext('Message')}")
        etag = (root.findtext("ETag") or "").strip('"').lower() or expected_etag
        if expected_etag and etag_is_digest(resp.headers) and "-" in etag and etag != expected_etag:
            raise StoreError("checksum-mismatch", f"{key}: multipart ETag {etag} differs from the expected {expected_etag}")
        return etag

    def set_md5(self, key: str, etag: str, md5_hex: str) -> str:
        """Attach the content MD5 as metadata to the object, only if it is still the one with ``etag``.

        An in-place copy with replaced metadata: SeaweedFS rewrites only the metadata; AWS copies
        the object server-side (and then reports the plain MD5 as its ETag). Returns the new ETag.
        A PreconditionFailed error means another writer replaced the object meanwhile.
        """
        headers = {
            "x-amz-copy-source": f"/{self.bucket}/{_quote_key(key)}",
            "x-amz-copy-source-if-match": f'"{etag}"',
            "x-amz-metadata-directive": "REPLACE",
            "x-amz-meta-md5": md5_hex,
            "Content-Type": "application/octet-stream",
        }
        resp = self.request("PUT", key, headers=headers)
        root = _xml_children(resp.data)
        if root.tag == "Error":  # like a completion, a copy may fail inside a 200 response
            raise StoreError(root.findtext("Code") or "s3-error", f"s3://{self.bucket}/{key}: {root.findtext('Message')}")
        final = (root.findtext("ETag") or "").strip('"').lower() or etag
        # AWS reports a copied object's plain MD5; SSE-KMS and SSE-C give it a new ETag of no meaning.
        if etag_is_digest(resp.headers) and final not in (etag, md5_hex):
            raise StoreError("checksum-mismatch", f"{key}: after the metadata copy the ETag is {final}, expected {etag} or {md5_hex}")
        return final

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.request("DELETE", key, params={"uploadId": upload_id})

    def pending_multipart(self, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads started under ``prefix`` and never completed."""
        root = _xml_children(self.request("GET", params={"uploads": None, "prefix": prefix}).data)
        return [(u.findtext("Key") or "", u.findtext("UploadId") or "") for u in root.iter("Upload")]

    def get(self, key: str):
        """A streaming response for the object's content (the caller reads and releases it)."""
        return self.request("GET", key, stream=True)

    def delete(self, key: str) -> None:
        self.request("DELETE", key)

    def large_uploader(self, parts, slots, chunksize: int, single_pass: bool) -> MultipartUploader:
        """Multipart uploads sharing a sync's part threads and memory slots (see multipart.py)."""
        return MultipartUploader(self, parts, slots, chunksize, single_pass)

    def close(self) -> None:
        self.http.clear()
