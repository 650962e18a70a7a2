"""Content hashes as S3 knows them: MD5 for single-part objects, MD5-of-part-MD5s for multipart."""

from __future__ import annotations

import base64
import hashlib

READ_BLOCK = 1024 * 1024


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(digest: bytes) -> str:
    """The Content-MD5 header value for a raw digest (the server verifies the body against it)."""
    return base64.b64encode(digest).decode()


def file_md5(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def range_md5(path, offset: int, length: int) -> bytes:
    """Raw MD5 of ``length`` bytes at ``offset``: one part of a multipart upload."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            block = f.read(min(READ_BLOCK, length))
            if not block:
                break
            h.update(block)
            length -= len(block)
    return h.digest()


def part_plan(size: int, chunksize: int) -> list[tuple[int, int]]:
    """(offset, length) of each part of a ``size``-byte multipart upload; an empty file is one empty part."""
    return [(offset, min(chunksize, size - offset)) for offset in range(0, size, chunksize)] or [(0, 0)]


def read_parts(f, size: int, chunksize: int):
    """Yield the parts of an open file in order, exactly as planned for ``size`` bytes.

    A file that got shorter since it was measured raises EOFError (it changed while it was
    read); one that grew is read only up to ``size`` and caught by the caller's stat check.
    """
    for offset, length in part_plan(size, chunksize):
        data = f.read(length)
        if len(data) != length:
            raise EOFError(f"expected {length} bytes at offset {offset}, read {len(data)}")
        yield data


def multipart_etag(part_digests: list[bytes]) -> str:
    """The ETag S3 gives an object completed from these parts."""
    return f"{hashlib.md5(b''.join(part_digests)).hexdigest()}-{len(part_digests)}"


def is_plain_md5_etag(etag: str) -> bool:
    """True for an ETag shaped like a single-part MD5 (32 hex digits).

    The shape alone does not prove it is one: objects encrypted with SSE-KMS or SSE-C get
    32-hex ETags that are not the MD5 of the content (see :func:`etag_is_digest`).
    """
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def etag_is_digest(headers) -> bool:
    """Whether the ETag in a response with these headers is computed from the content (the MD5,
    or the MD5 of part MD5s): true for unencrypted and SSE-S3 (AES256) objects, false for
    SSE-KMS (``aws:kms``, ``aws:kms:dsse``) and SSE-C objects, whose ETags S3 does not derive
    from the content. Only a response can tell; a listing carries no encryption."""
    sse = (headers.get("x-amz-server-side-encryption") or "").lower()
    return not sse.startswith("aws:kms") and not headers.get("x-amz-server-side-encryption-customer-algorithm")
