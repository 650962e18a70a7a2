"""AWS Signature Version 4 for the few S3 requests a sync sends: pure functions, no I/O.

botocore's generic signer costs about as much CPU as the HTTP exchange itself for a small
PUT (it re-parses the URL and rebuilds every header list per request); a sync of many small
notebooks is bound by exactly that per-request cost. This signer handles only what
``S3Store`` sends (header-based auth, path already encoded) and caches the day's
signing key. Its output is checked against botocore's in the unit tests.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def canonical_query(params: dict | None) -> str:
    """Sorted, each key and value percent-encoded; a flag parameter (value None) becomes ``key=``."""
    if not params:
        return ""
    encoded = sorted((quote(k, safe="-_.~"), quote("" if v is None else str(v), safe="-_.~")) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in encoded)


def host_header(scheme: str, netloc: str) -> str:
    """The Host value HTTP clients send: the port is left out when it is the scheme's default."""
    host, _, port = netloc.rpartition(":") if netloc.rsplit(":", 1)[-1].isdigit() else (netloc, "", "")
    if port and (scheme, port) in (("http", "80"), ("https", "443")):
        return host
    return netloc


@lru_cache(maxsize=8)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: dict[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    region: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add to a request so that S3 accepts it.

    ``path`` is the request path as sent (already percent-encoded, as S3 signs it without
    encoding it again); every header in ``headers`` is signed.
    """
    now = now or datetime.now(timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    added = {"X-Amz-Date": amz_date, "X-Amz-Content-SHA256": payload_hash}
    if token:
        added["X-Amz-Security-Token"] = token
    signed = {k.lower(): " ".join(str(v).split()) for k, v in {**headers, **added}.items()}
    signed["host"] = host
    names = sorted(signed)
    canonical = "\n".join(
        [method, path, query, "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names), payload_hash]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(_signing_key(secret_key, day, region), to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return added
