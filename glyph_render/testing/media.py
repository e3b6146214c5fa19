"""Fetch and decode ``image_url`` parts: ``data:`` URLs, and ``file://`` under an allowed folder.

Refusals use vLLM 0.32's wording and status, so client code tested here handles the real thing:
a ``file://`` outside ``--allowed-local-media-path`` is a 400, a missing file inside it is a 500
(vLLM lets that OSError through as an internal error). Remote ``http(s)`` images are refused:
this stand-in never reaches the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .protocol import ApiError

__all__ = ["PageImage", "load_image"]

_OBJECT_AT = re.compile(r" at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class PageImage:
    """A decoded page: its size, the raw bytes' digest (OCR cache key) and the lazy PIL image."""

    width: int
    height: int
    digest: str
    image: Image.Image


def load_image(url: str, allowed_local_media_path: str | None, *, decode: bool = True) -> PageImage:
    """Decode one image URL; raises ApiError with vLLM's status and message on failure.

    ``decode=False`` reads only the header (size), for ``--no-ocr`` client benchmarks.
    """
    if not isinstance(url, str) or not url:
        raise ApiError(400, "image_url.url must be a non-empty string")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        data = _data_url_bytes(url)
    elif scheme == "file":
        data = _file_url_bytes(url, allowed_local_media_path)
    elif scheme in ("http", "https"):
        raise ApiError(
            400, "serve-ocr does not fetch remote images; send a data: URL or a file:// URL "
            "under --allowed-local-media-path"
        )
    else:
        raise ApiError(400, f"Unsupported image URL scheme {scheme or url[:16]!r}")
    return _decode(data, decode)


def _data_url_bytes(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise ApiError(400, "Failed to load image: data URL has no ',' before its payload")
    if not header.lower().endswith(";base64"):
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"Failed to load image: invalid base64 ({exc})") from None


def _file_url_bytes(url: str, allowed: str | None) -> bytes:
    if not allowed:
        raise ApiError(400, "Cannot load local files without `--allowed-local-media-path`.")
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, f"file:// URL with a host is not supported: {parsed.netloc!r}")
    path = Path(urllib.parse.unquote(parsed.path))
    root = Path(allowed).resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ApiError(
            400,
            f"The file path {path} must be a subpath of `--allowed-local-media-path <path>`.",
        )
    try:
        return resolved.read_bytes()
    except OSError as exc:
        name = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ApiError(500, f"[Errno {exc.errno}] {name}: '<path>'") from None


def _decode(data: bytes, decode: bool) -> PageImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if decode:
                image.load()
    except Exception as exc:  # Pillow raises many types for bad input
        message = _OBJECT_AT.sub(">", str(exc))
        raise ApiError(400, f"Failed to load image: {message}") from None
    digest = hashlib.sha256(data).hexdigest()
    return PageImage(image.width, image.height, digest, image)
