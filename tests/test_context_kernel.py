"""The notebook as context, in a real kernel through the real SDK and the emulator: attachments of every kind
(the request log's content blocks), interpolation, `Err`, `-f code/json/text`, `%claude last`, tokens and
the guard, and bad input (one line, nothing sent)."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.kernel import KernelSession

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

CODE_ANSWER = "Here it is:\n\n```python\nimport math\nprint(math.pi)\n```\n\nand a second:\n\n```\nx = 1\n```\n"
SCRIPT = {"turns": [
    {"match": "code please", "content": CODE_ANSWER},
    {"match": "json please", "content": '```json\n{"rows": 3, "ok": true}\n```'},
    {"match": "not json", "content": "Sorry, no JSON today."},
    {"match": "", "content": "Noted."},
]}
SETUP = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image as PILImage
from IPython.display import Image as IPyImage
import io
df = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"] * 10, "temp": np.arange(30) * 1.5, "n": np.arange(30)})
series = df["temp"]
arr = np.linspace(0, 1, 12).reshape(3, 4)
fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
ax.plot([1, 3, 2])
pil = PILImage.new("RGB", (300, 200), "teal")
buffer = io.BytesIO(); pil.save(buffer, format="PNG"); png_bytes = buffer.getvalue()
ipy = IPyImage(data=png_bytes)
big = PILImage.new("RGB", (4000, 3000), "orange")
big.save("big.jpg", format="JPEG")
PILImage.new("RGB", (64, 48), "red").save("small.png")
Path = __import__("pathlib").Path
Path("broken.png").write_bytes(b"not an image at all")
Path("notes.md").write_text("# Notes\\n\\nThe cache is cold on Mondays.\\n")
Path("doc.pdf").write_bytes(b"%PDF-1.4\\n1 0 obj << /Type /Page >> endobj\\n"
                            b"2 0 obj << /Type /Pages >> endobj\\n%%EOF\\n")
settings = {"a": 1}
"""


@pytest.fixture
def kernel(kernel_factory: Any, api_env: dict[str, str], emulator: Emulator, tmp_path: Path) -> KernelSession:
    emulator.set_script(SCRIPT)
    session = kernel_factory(env={**api_env, "CLAUDE_MAGIC_DISPLAY": "final"}, cwd=tmp_path)
    session.execute("%load_ext claude_magic")
    session.execute(SETUP)
    return session


def message_posts(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.path == "/v1/messages"]


def last_user_blocks(emulator: Emulator) -> list[dict[str, Any]]:
    content = message_posts(emulator)[-1].messages[-1]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def sizes(blocks: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The request log excerpt the report shows: block type and size, never the data itself."""
    return [(b["type"], len(b["text"]) if b["type"] == "text"
             else (b["source"]["media_type"], len(b["source"]["data"]))) for b in blocks]


def test_text_kinds_are_labelled_blocks_before_the_prompt(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude -a df,series,arr,settings,notes.md\nWhat stands out?")
    blocks = last_user_blocks(emulator)
    print("request log, text kinds:", sizes(blocks))
    assert [b["type"] for b in blocks] == ["text"] * 6
    df_text, series_text, arr_text, repr_text, md_text, prompt = (b["text"] for b in blocks)
    assert prompt == "What stands out?"
    assert df_text.startswith('<attachment name="df" kind="pandas DataFrame">')
    assert "shape: 30 rows × 3 columns" in df_text and "head(5):" in df_text and "tail(5):" in df_text
    assert "| 29 | Pune | 43.5 | 29 |" in df_text  # the tail, as a Markdown table
    assert "describe() of the numeric columns" in df_text and "| mean |" in df_text
    assert 'kind="pandas Series"' in series_text and "length: 30" in series_text
    assert "shape: (3, 4), dtype: float64" in arr_text and "min 0, max 1" in arr_text
    assert "{'a': 1}" in repr_text
    assert "The cache is cold on Mondays." in md_text
    line = result.final_text()
    assert line.startswith("Attached: df (pandas DataFrame, 30 rows × 3 columns, ~")
    assert "notes.md (MD file, 3 lines" in line


def test_a_small_budget_says_what_it_cut(kernel: KernelSession, emulator: Emulator) -> None:
    kernel.execute("%config ClaudeMagic.attachment_chars = 400")
    result = kernel.execute("%%claude -a df\nSummarize.")
    text = last_user_blocks(emulator)[0]["text"]
    assert len(text) < 600
    assert "left out to fit 400 characters: " in text and "describe()" in text.split("left out")[1]
    assert "left out to fit 400 characters" in result.final_text()


def test_images_of_every_kind_become_base64_image_blocks(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude -a fig,ax,pil,ipy,png_bytes,small.png,big.jpg\nDescribe the pictures.")
    blocks = last_user_blocks(emulator)
    print("request log, images:", sizes(blocks))
    images = [b for b in blocks if b["type"] == "image"]
    assert len(images) == 7
    media = [b["source"]["media_type"] for b in images]
    assert media == ["image/png"] * 6 + ["image/jpeg"]
    for image in images:
        raw = base64.b64decode(image["source"]["data"])
        assert raw[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0")
    from PIL import Image

    scaled = Image.open(io.BytesIO(base64.b64decode(images[-1]["source"]["data"])))
    assert max(scaled.size) <= 1568 and scaled.width * scaled.height <= 1_150_000  # scaled as the API would
    line = result.final_text()
    assert "fig (matplotlib Figure, PNG 400×300 px" in line and "ax (matplotlib Axes" in line
    assert re.search(r"big\.jpg \(JPG file, JPEG 123\d×92\d px, [\d.]+ kB, ~1,5\d\d tokens; scaled from 4000×3000 px",
                     line)
    # The emulator counted what the client estimated for the figure: width × height / 750.
    assert message_posts(emulator)[-1].status == 200


def test_pdf_is_a_document_block(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude -a doc.pdf\nWhat is in the PDF?")
    blocks = last_user_blocks(emulator)
    print("request log, PDF:", sizes(blocks))
    document = blocks[1]
    assert document["type"] == "document" and document["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(document["source"]["data"]).startswith(b"%PDF-")
    assert "doc.pdf (PDF, 1 page" in result.final_text()


def test_history_keeps_attachments_and_a_setting_drops_old_images(kernel: KernelSession, emulator: Emulator) -> None:
    kernel.execute("%%claude -a small.png\nWhat colour is it?")
    kernel.execute("%%claude\nAnd a follow-up?")
    first = message_posts(emulator)[-1].messages[0]["content"]
    assert [b["type"] for b in first] == ["text", "image", "text"]
    kernel.execute("%config ClaudeMagic.history_images = False")
    kernel.execute("%%claude\nOne more follow-up?")
    first = message_posts(emulator)[-1].messages[0]["content"]
    assert [b["type"] for b in first] == ["text", "text", "text"]
    assert "dropped from history" in first[1]["text"]


@pytest.mark.parametrize(("cell", "expected"), [
    ("%%claude -a missing.csv\nhi", "file not found: 'missing.csv'"),
    ("%%claude -a nosuchvar\nhi", "no variable or file named 'nosuchvar'"),
    ("%%claude -a broken.png\nhi", "broken.png is not a readable PNG, JPEG, GIF or WebP image"),
    ("%%claude -a Err\nhi", "no cell has raised an exception yet"),
    ("%%claude -i\nWhat is {undefined_name}?", "{undefined_name}: 'undefined_name' is not defined"),
    ("%%claude -i\nWhat is {Out[999]}?", "{Out[999]}: no item 999"),
])
def test_bad_input_is_one_line_and_nothing_is_sent(kernel: KernelSession, emulator: Emulator, cell: str,
                                                     expected: str) -> None:
    result = kernel.execute(cell, allow_error=True)
    assert result.status == "error"
    assert expected in result.stderr() + result.traceback_text()
    assert len(result.stderr().strip().splitlines()) == 1
    assert message_posts(emulator) == []


def test_interpolation_rules_and_escapes(kernel: KernelSession, emulator: Emulator) -> None:
    kernel.execute("x = 41\nname = 'Ada'")
    count = kernel.execute("x + 1").reply["execution_count"]
    kernel.execute("%%claude -i\nIs {x + 1} right, {name}? Braces: {{x}} and {{}}. Cell: {In[N]} gave {Out[N]}."
                   .replace("N", str(count)))
    assert message_posts(emulator)[-1].messages[-1]["content"] == (
        "Is 42 right, Ada? Braces: {x} and {}. Cell: x + 1 gave 42.")
    # Without the flag the prompt is sent exactly as typed, by the cell and by the line magic.
    kernel.execute("%%claude\nKeep {x} and $name as typed")
    assert message_posts(emulator)[-1].messages[-1]["content"] == "Keep {x} and $name as typed"
    kernel.execute("%claude keep {x} too")
    assert message_posts(emulator)[-1].messages[-1]["content"] == "keep {x} too"
    kernel.execute("%config ClaudeMagic.interpolate = True")
    kernel.execute("%claude now {x} expands")
    assert message_posts(emulator)[-1].messages[-1]["content"] == "now 41 expands"


def test_err_after_a_failing_cell(kernel: KernelSession, emulator: Emulator) -> None:
    failed = kernel.execute("def load():\n    return {}['missing']\nload()", allow_error=True)
    assert failed.status == "error"
    count = failed.reply["execution_count"]
    kernel.execute(f"%%claude -i -a Err\nWhy? {{Err[{count}]}}")
    blocks = last_user_blocks(emulator)
    traceback_block, prompt = blocks[0]["text"], blocks[1]["text"]
    assert traceback_block.startswith('<attachment name="Err" kind="traceback">')
    assert "KeyError: 'missing'" in traceback_block and "in load" in traceback_block
    assert f"Cell In[{count}], line 3" in traceback_block
    assert "\x1b[" not in traceback_block and "interactiveshell.py" not in traceback_block
    assert prompt.startswith("Why? Traceback (most recent call last):") and "KeyError: 'missing'" in prompt


def test_format_code_puts_the_code_blocks_in_the_next_cell(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude -f code\ncode please")
    payloads = [p for p in result.reply.get("payload", []) if p.get("source") == "set_next_input"]
    assert payloads == [{"source": "set_next_input", "text": "import math\nprint(math.pi)\n\nx = 1",
                         "replace": False}]
    assert "import math" in result.final_text()  # the answer is shown as usual; nothing was executed
    assert "3.14" not in result.stdout()


def test_format_json_last_and_text(kernel: KernelSession, emulator: Emulator) -> None:
    kernel.execute("%%claude -f json --out r\njson please")
    assert json.loads(kernel.execute("import json; print(json.dumps(r.json))").stdout()) == {"rows": 3, "ok": True}
    failed = kernel.execute("%%claude -f json\nnot json", allow_error=True)
    assert "The answer is not JSON (Expecting value at line 1, column 1)" in failed.traceback_text()
    last = kernel.execute("%claude last")
    assert "Sorry, no JSON today." in last.final_text()
    text = kernel.execute("%%claude -f text\ncode please")
    outputs = text.final_outputs()
    assert list(outputs[-1]["data"]) == ["text/plain"] and "```python" in outputs[-1]["data"]["text/plain"]


def test_tokens_counts_with_the_api_and_the_guard_refuses_before_sending(kernel: KernelSession,
                                                                        emulator: Emulator) -> None:
    kernel.execute("%%claude -a df\nFirst question about the frame")
    result = kernel.execute("%claude -a small.png tokens")
    counted = [r for r in emulator.requests if r.path == "/v1/messages/count_tokens"]
    assert len(counted) == 1 and counted[0].status == 200
    out = result.stdout()
    assert out.startswith("Next request: ") and "1 turn of history, attachments: small.png" in out
    assert "claude-sonnet-5-5: context window 1,000,000 tokens" in out
    # Normal turns pay no count: the history's tokens are known from the last turn's usage.
    emulator.clear_requests()
    kernel.execute("%%claude\nA normal follow-up")
    assert [r.path for r in emulator.requests] == ["/v1/messages"]
    kernel.execute("%config ClaudeMagic.max_input_tokens = 100")
    emulator.clear_requests()
    refused = kernel.execute("%%claude -a df\nThis one is too big", allow_error=True)
    assert refused.status == "error"
    line = refused.traceback_text().strip()
    assert line.startswith("ClaudeError: This turn would send ") and "over the limit of 100" in line
    assert "%claude reset" in line and len(line.splitlines()) == 1
    assert "/v1/messages" not in [r.path for r in emulator.requests]


def test_array_summary_in_process() -> None:
    from claude_magic.core.context import attach_value

    attachment = attach_value("grid", np.arange(1_000, dtype=float).reshape(10, 100))
    text = attachment.blocks[0]["text"]
    assert "shape: (10, 100), dtype: float64, 1,000 elements" in text and "..." in text  # a sample, not all
    assert attachment.size == "10×100 float64"


def test_guard_fingerprints_skip_long_base64_but_tell_states_apart() -> None:
    from claude_magic.core.tokens import fingerprint

    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    changed = "A" * 2_510 + "B" + "A" * 97_489  # differs at a sampled character
    other = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": changed}}
    base = {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    assert fingerprint(base) == fingerprint(base)
    assert fingerprint(base) != fingerprint({"model": "m", "messages": [{"role": "user", "content": [other]}]})
