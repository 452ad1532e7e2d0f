"""Image and document blocks, checked and counted as the real API does (limits in `claude_magic._media`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .. import _media
from ._errors import ApiError

DOCUMENT_MEDIA_TYPES = ("application/pdf", "text/plain")
FALLBACK_IMAGE_TOKENS = 1_600  # an image whose header the emulator cannot read: the API's largest usual cost


def _decoded(where: str, data: Any) -> bytes:
    if not isinstance(data, str) or not data:
        raise ApiError(400, f"{where}.source.data: Field required")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}.source.base64: invalid base64 data") from None


def check_media_block(where: str, block: dict[str, Any], images_in_request: int) -> None:
    """400 for an image or document block the API would reject: source, media type, base64, size limits."""
    kind = block["type"]
    source = block.get("source")
    if not isinstance(source, dict):
        raise ApiError(400, f"{where}.source: Field required")
    source_type = source.get("type")
    if kind == "image":
        if source_type == "url":
            return
        if source_type != "base64":
            raise ApiError(400, f"{where}.source.type: Input should be 'base64' or 'url'")
        media_type = source.get("media_type")
        if media_type not in _media.IMAGE_MEDIA_TYPES:
            raise ApiError(400, f"{where}.source.base64.media_type: Input should be "
                           + ", ".join(repr(t) for t in _media.IMAGE_MEDIA_TYPES))
        data = source.get("data")
        if isinstance(data, str) and len(data) > _media.MAX_IMAGE_BASE64_BYTES:
            raise ApiError(400, f"{where}.source.base64: image exceeds {_media.MAX_IMAGE_BASE64_BYTES // 2**20} MB "
                           f"maximum: {len(data)} bytes > {_media.MAX_IMAGE_BASE64_BYTES} bytes")
        raw = _decoded(where, data)
        actual = _media.sniff_media_type(raw)
        if actual not in _media.IMAGE_MEDIA_TYPES:
            raise ApiError(400, f"{where}.source.base64.data: Could not process image")
        if actual != media_type:
            raise ApiError(400, f"{where}.source.base64.data: Image does not match the provided media type "
                           f"{media_type}")
        size = _media.image_size(raw)
        edge = _media.MAX_IMAGE_EDGE_MANY if images_in_request > _media.MANY_IMAGES else _media.MAX_IMAGE_EDGE
        if size is not None and max(size) > edge:
            raise ApiError(400, f"{where}.source.base64.data: image dimensions exceed max allowed size: "
                           f"{edge} pixels")
        return
    if source_type == "text":
        if source.get("media_type") != "text/plain" or not isinstance(source.get("data"), str):
            raise ApiError(400, f"{where}.source.text: media_type 'text/plain' and string data are required")
        return
    if source_type == "url":
        return
    if source_type != "base64":
        raise ApiError(400, f"{where}.source.type: Input should be 'base64', 'text', 'content' or 'url'")
    if source.get("media_type") != "application/pdf":
        raise ApiError(400, f"{where}.source.base64.media_type: Input should be 'application/pdf'")
    raw = _decoded(where, source.get("data"))
    if _media.sniff_media_type(raw) != "application/pdf":
        raise ApiError(400, f"{where}.source.base64.data: The PDF specified was not valid.")
    if _media.pdf_pages(raw) > _media.MAX_PDF_PAGES:
        raise ApiError(400, f"{where}: A maximum of {_media.MAX_PDF_PAGES} PDF pages may be provided.")


def media_tokens(block: dict[str, Any]) -> int:
    """Input tokens of an image (width × height / 750 after the API's scaling) or a document."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    data = source.get("data", "")
    if source.get("type") == "text":
        return -1  # counted as text by the caller
    try:
        raw = base64.b64decode(data) if isinstance(data, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if block.get("type") == "image":
        size = _media.image_size(raw)
        return _media.image_tokens(*size) if size else FALLBACK_IMAGE_TOKENS
    return _media.pdf_tokens(raw)
