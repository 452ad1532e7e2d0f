"""Images and documents as the Messages API takes them: media types, limits, sizes, token estimates.

Shared by both sides (the attachments in `core/context.py` and the emulator's validation and counting), so
the client's estimate and the emulator's count are one formula. Everything here is pure and needs no
imaging library: the size of a PNG, GIF or JPEG is read from its header, the media type from its first
bytes.

The limits are the API's documented ones (Messages API, "Images and vision" and "PDF support"):
an image is rejected above 8000×8000 px (2000×2000 px when a request holds more than 20 images) or
above 5 MB of base64; images whose long edge is over 1568 px or that are over ~1.15 megapixels are
scaled down by the API itself (which only adds latency), so the client scales them first; an image costs
about width×height/750 tokens; a request is at most 32 MB, a PDF at most 100 pages.
"""

from __future__ import annotations

import math
import re
import struct

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
MAX_IMAGE_EDGE = 8000
MAX_IMAGE_EDGE_MANY = 2000  # when a request holds more than MANY_IMAGES images
MANY_IMAGES = 20
MAX_IMAGES_PER_REQUEST = 100
RECOMMENDED_LONG_EDGE = 1568
RECOMMENDED_PIXELS = 1_150_000
PIXELS_PER_TOKEN = 750
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_PDF_PAGES = 100
PDF_PAGE_TOKENS = 1_500  # the API's docs: 1,500-3,000 tokens a page of text; images of pages come on top

_EXTENSION_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
                          ".webp": "image/webp", ".pdf": "application/pdf"}


def sniff_media_type(data: bytes) -> str | None:
    """The media type the bytes' signature says (PNG, JPEG, GIF, WebP, PDF), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def media_type_for_suffix(suffix: str) -> str | None:
    return _EXTENSION_MEDIA_TYPES.get(suffix.lower())


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG, GIF, JPEG or WebP header; None when it cannot be read."""
    kind = sniff_media_type(data)
    try:
        if kind == "image/png" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if kind == "image/gif":
            return struct.unpack("<HH", data[6:10])
        if kind == "image/jpeg":
            return _jpeg_size(data)
        if kind == "image/webp":
            return _webp_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the segments to the first start-of-frame marker (SOF0..SOF15 except DHT, JPG, DAC).
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def base64_length(raw_bytes: int) -> int:
    return 4 * math.ceil(raw_bytes / 3)


def recommended_size(width: int, height: int) -> tuple[int, int]:
    """The size the API would scale an image to (long edge ≤ 1568 px, ≤ ~1.15 MP), aspect kept."""
    scale = min(1.0, RECOMMENDED_LONG_EDGE / max(width, height, 1),
                math.sqrt(RECOMMENDED_PIXELS / max(width * height, 1)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def image_tokens(width: int, height: int) -> int:
    """The API's documented estimate, after its own scaling: width × height / 750."""
    scaled_width, scaled_height = recommended_size(width, height)
    return max(1, math.ceil(scaled_width * scaled_height / PIXELS_PER_TOKEN))


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")


def pdf_pages(data: bytes) -> int:
    """Pages of a PDF counted from its page objects (0 when they sit in compressed object streams)."""
    return len(_PDF_PAGE.findall(data))


def pdf_tokens(data: bytes) -> int:
    return max(1, pdf_pages(data)) * PDF_PAGE_TOKENS


__all__ = ["IMAGE_MEDIA_TYPES", "MAX_IMAGE_BASE64_BYTES", "MAX_IMAGE_EDGE", "MAX_PDF_PAGES", "MAX_REQUEST_BYTES",
           "base64_length", "image_size", "image_tokens", "media_type_for_suffix", "pdf_pages", "pdf_tokens",
           "recommended_size", "sniff_media_type"]
