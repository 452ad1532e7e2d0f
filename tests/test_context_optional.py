"""The package works without pandas, numpy, matplotlib and Pillow, which only the tests install.

A separate Python process makes those imports fail (as where they are not installed), loads the
extension in an IPython shell and attaches images through the real SDK and the emulator: small ones go
as they are, ones the API would scale go unscaled with a note, one over the API's limit is one line
asking for Pillow, and nothing is sent for it.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

from support import FAKE_API_KEY

from claude_magic.emulator import Emulator

OPTIONAL = ("PIL", "pandas", "numpy", "matplotlib")


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature, IHDR and IEND: what the client and the emulator read an image's size from."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


SCRIPT = textwrap.dedent(f"""
    import json, sys
    for name in {OPTIONAL!r}:
        sys.modules[name] = None  # `import name` now raises ImportError
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "claude_magic")
    shell.run_line_magic("config", "ClaudeMagic.display_mode = 'none'")
    shell.user_ns.update(small=bytes.fromhex(sys.argv[1]), large=bytes.fromhex(sys.argv[2]),
                         huge=bytes.fromhex(sys.argv[3]), notes={{"unit": "c"}})
    shell.run_cell_magic("claude", "-a small,large,notes --out r", "Describe these.")
    reply = shell.user_ns["r"]
    try:
        shell.run_cell_magic("claude", "-a huge", "And this one?")
        huge = None
    except UsageError as exc:
        huge = str(exc)
    loaded = sorted(name for name in {OPTIONAL!r} if sys.modules.get(name) is not None)
    print(json.dumps({{"error": reply.error, "text": reply.text, "huge": huge, "loaded": loaded}}))
""")


def test_attachments_work_without_pillow_pandas_numpy_matplotlib(emulator: Emulator) -> None:
    small, large, huge = png_header(64, 48), png_header(3000, 2000), png_header(9000, 100)
    emulator.set_script({"turns": [{"content": "Two images and a dict."}]})
    env = {**os.environ, "ANTHROPIC_BASE_URL": emulator.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}
    done = subprocess.run([sys.executable, "-c", SCRIPT, small.hex(), large.hex(), huge.hex()], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["loaded"] == []  # none of them was imported behind the blocker's back
    assert result["error"] is None and result["text"] == "Two images and a dict."
    assert len(emulator.requests) == 1  # the huge image's turn sent nothing
    content = emulator.requests[0].messages[-1]["content"]
    images = [block["source"] for block in content if block["type"] == "image"]
    assert [(image["media_type"], base64.b64decode(image["data"])) for image in images] == [
        ("image/png", small), ("image/png", large)]  # as they were: nothing to scale them with
    assert any(block["type"] == "text" and "'unit': 'c'" in block["text"] for block in content)
    assert result["huge"] is not None and "over the API's limit" in result["huge"]
    assert "pip install pillow" in result["huge"] and "\n" not in result["huge"]
