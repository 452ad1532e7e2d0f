"""The notebook as context: `{name}` interpolation, the exceptions cells raised, and attachments.

    prompt = interpolate("Why does {func.__name__} fail? {Err[3]}", shell.user_ns, ERRORS)
    attachments = resolve_attachments(["df", "fig", "report.pdf", "Err"], shell.user_ns, ERRORS, budget=20_000)
    content = user_content(prompt, attachments)      # the user message's content blocks

Interpolation is IPython's own `FullEvalFormatter` (what `shell.var_expand` uses for `{expr}`, without
its `$name` form, which would swallow prices and shell variables in a question). Attachments are
recognised by duck typing: pandas, numpy, matplotlib and PIL are never imported here; an object can only
be a DataFrame if pandas is already loaded, so `sys.modules` is asked, not the import system.

Everything a user can get wrong raises ContextError with one line that names the problem; nothing is
sent then. Attached data is untrusted: it goes to the model as text or media blocks, and is drawn only as
the escaped summary line.
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from claude_magic import _media

DEFAULT_ATTACHMENT_CHARS = 20_000
CHARS_PER_TOKEN = 4  # the usual estimate for English text and code; the count comes from the API
TABLE_ROWS = 5  # head and tail rows of a table
TABLE_COLUMNS = 20  # wider frames show this many columns and say so
CELL_CHARS = 60
TEXT_SUFFIXES = frozenset({".py", ".md", ".txt", ".csv", ".json", ".tsv", ".yaml", ".yml", ".toml", ".rst",
                           ".ipynb", ".sql", ".sh", ".log", ".cfg", ".ini", ".html", ".xml", ".js", ".ts"})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ATTACH_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\]]*\])*")
_ERR_INDEX = re.compile(r"Err\[\s*(-?\d+)\s*\]")
_CELL_INPUT = re.compile(r"In\[\s*-?\d+\s*\]")


class ContextError(ValueError):
    """A problem with what was to be interpolated or attached: one line, and nothing is sent."""


# -- exceptions per execution count ------------------------------------------------------------------------


class ErrorLog(Mapping[int, str]):
    """Tracebacks (plain text) of the cells that raised, by execution count: `Err[3]`, `Err.last`.

    Filled by `record`, the extension's `post_run_cell` event hook."""

    def __init__(self) -> None:
        self._tracebacks: dict[int, str] = {}
        self._last: str | None = None

    def record(self, result: Any, shell: Any = None) -> None:
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if error is None:
            return
        text = format_traceback(error, shell)
        self._last = text
        count = getattr(result, "execution_count", None)
        if isinstance(count, int):
            self._tracebacks[count] = text

    @property
    def last(self) -> str | None:
        """The newest traceback; before the hook saw one, the one IPython keeps in `sys.last_value`."""
        if self._last is not None:
            return self._last
        error = getattr(sys, "last_value", None)
        return format_traceback(error) if isinstance(error, BaseException) else None

    def __getitem__(self, count: int) -> str:
        if count < 0 and self._tracebacks:  # Err[-1]: the newest, like a list
            ordered = sorted(self._tracebacks)
            if -count <= len(ordered):
                return self._tracebacks[ordered[count]]
        if count not in self._tracebacks:
            raise KeyError(f"cell {count} raised no exception (cells that did: "
                           f"{', '.join(map(str, sorted(self._tracebacks))) or 'none yet'})")
        return self._tracebacks[count]

    def __iter__(self) -> Any:
        return iter(sorted(self._tracebacks))

    def __len__(self) -> int:
        return len(self._tracebacks)

    def __repr__(self) -> str:
        return f"<Err: tracebacks of cells {sorted(self._tracebacks)}>"

    def clear(self) -> None:
        self._tracebacks.clear()
        self._last = None


ERRORS = ErrorLog()
"""The kernel's exceptions: module state, like the conversations, because they belong to the kernel."""


def format_traceback(error: BaseException, shell: Any = None) -> str:
    """The traceback as plain text (no ANSI colours), without IPython's own frames, cells named `In[n]`."""
    tb = error.__traceback__
    while tb is not None and _is_ipython_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(error), error, tb))
    compiler = getattr(shell, "compile", None)
    if compiler is not None and hasattr(compiler, "format_code_name"):
        for filename in set(re.findall(r'File "([^"]+)"', text)):
            label = compiler.format_code_name(filename)
            if label:
                text = text.replace(f'File "{filename}"', f"{label[0]} {label[1]}")
    return _ANSI.sub("", text).rstrip("\n")


def _is_ipython_frame(filename: str) -> bool:
    parts = PurePath(filename).parts
    return "IPython" in parts and "core" in parts


# -- interpolation -------------------------------------------------------------------------------------------


def interpolate(template: str, namespace: Mapping[str, Any], errors: ErrorLog = ERRORS) -> str:
    """`{expr}` replaced by its value in `namespace` (plus `Err`), `{{`/`}}` by literal braces.

    Raises ContextError naming the first field that cannot be evaluated.
    """
    from IPython.utils.text import FullEvalFormatter

    class NamingFormatter(FullEvalFormatter):  # type: ignore[misc]
        """IPython's formatter, remembering which field it is evaluating (for the error line)."""

        current = ""

        def parse(self, format_string: str) -> Any:
            for literal, name, spec, conversion in super().parse(format_string):
                self.current = name if not spec else f"{name}:{spec}"
                yield literal, name, spec, conversion

    names = dict(namespace)
    names.setdefault("Err", errors)
    formatter = NamingFormatter()
    try:
        return str(formatter.vformat(template, (), names))
    except NameError as exc:
        name = getattr(exc, "name", None) or str(exc)
        raise ContextError(f"{{{formatter.current}}}: {name!r} is not defined in the notebook; nothing was "
                           "sent (write {{ and }} for literal braces).") from None
    except (KeyError, IndexError) as exc:
        detail = exc.args[0] if isinstance(exc, KeyError) and isinstance(exc.args[0], str) else f"no item {exc}"
        raise ContextError(f"{{{formatter.current}}}: {detail}; nothing was sent.") from None
    except ValueError as exc:  # a lone { or }
        raise ContextError(f"The prompt's braces do not pair up ({exc}): write {{{{ and }}}} for literal "
                           "braces; nothing was sent.") from None
    except Exception as exc:  # noqa: BLE001 - whatever the user's expression raised
        raise ContextError(f"{{{formatter.current}}} raised {type(exc).__name__}: {exc}; nothing was sent "
                           "(write {{ and }} for literal braces).") from None


# -- attachments ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """One labelled context block (or a label and a media block) that goes before the prompt."""

    name: str
    kind: str  # what it is, for the summary line: "pandas DataFrame", "PNG image", "PDF", ...
    blocks: tuple[dict[str, Any], ...]
    size: str  # its size as a person reads it: "120 rows × 4 columns", "640×480 px, 21 kB"
    tokens: int  # estimated input tokens
    notes: tuple[str, ...] = field(default=())  # what was cut or scaled

    @property
    def is_image(self) -> bool:
        return any(block.get("type") == "image" for block in self.blocks)

    def summary(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return f"{self.name} ({self.kind}, {self.size}, ~{self.tokens:,} tokens{extra})"


def summary_line(attachments: Iterable[Attachment]) -> str:
    """The one line the cell shows before the answer."""
    return "Attached: " + " · ".join(attachment.summary() for attachment in attachments)


def user_content(prompt: str, attachments: Iterable[Attachment]) -> str | list[dict[str, Any]]:
    """The user message's content: the prompt as typed, after its attachments' blocks when there are any
    (the API's docs: documents and images work best before the question)."""
    blocks = [block for attachment in attachments for block in attachment.blocks]
    if not blocks:
        return prompt
    return [*blocks, {"type": "text", "text": prompt}]


def split_names(values: Iterable[str]) -> list[str]:
    """`-a df,fig -a Err` → ["df", "fig", "Err"] (commas inside brackets do not split)."""
    names: list[str] = []
    for value in values:
        depth, start = 0, 0
        for index, char in enumerate(value):
            depth += {"[": 1, "]": -1}.get(char, 0)
            if char == "," and depth == 0:
                names.append(value[start:index])
                start = index + 1
        names.append(value[start:])
    return [name.strip() for name in names if name.strip()]


def resolve_attachments(names: Iterable[str], namespace: Mapping[str, Any], errors: ErrorLog = ERRORS, *,
                        budget: int = DEFAULT_ATTACHMENT_CHARS,
                        mcp: tuple[Any, float] | None = None) -> list[Attachment]:
    """Attachments for `-a NAME,...`: variables, `Err`/`Err[n]`, `In[n]`/`Out[n]`, file paths, or MCP
    resources `@SERVER:URI` (`mcp`: the `mcp_servers` setting and the timeout they are read with)."""
    attachments = [mcp_resource(name, mcp, budget) if _MCP_RESOURCE.fullmatch(name)
                   else _resolve_name(name, namespace, errors, budget) for name in names]
    check_image_count(attachments)
    return attachments


def attach_objects(objects: Iterable[Any], namespace: Mapping[str, Any], *,
                   budget: int = DEFAULT_ATTACHMENT_CHARS, mcp: tuple[Any, float] | None = None) -> list[Attachment]:
    """Attachments for `ask(..., attach=[df, fig, "chart.png", "@notes:notes://todo"])`: labelled by the
    variable that holds them; a string `@SERVER:URI` is an MCP server's resource."""
    attachments = []
    for obj in objects:
        if isinstance(obj, str) and _MCP_RESOURCE.fullmatch(obj):
            attachments.append(mcp_resource(obj, mcp, budget))
        elif isinstance(obj, (str, PurePath)) and _looks_like_path(str(obj)):
            attachments.append(attach_file(str(obj), str(obj), budget))
        else:
            attachments.append(attach_value(_label_for(obj, namespace), obj, budget))
    check_image_count(attachments)
    return attachments


def check_image_count(attachments: list[Attachment]) -> None:
    images = sum(attachment.is_image for attachment in attachments)
    if images > _media.MAX_IMAGES_PER_REQUEST:
        raise ContextError(f"{images} images attached; the API takes at most {_media.MAX_IMAGES_PER_REQUEST} "
                           "per request. Attach fewer.")


# `@SERVER:URI`, the way Claude Code refers to an MCP server's resource (`@notes:notes://groceries`).
_MCP_RESOURCE = re.compile(r"@(?P<server>[A-Za-z0-9_.-]+):(?P<uri>\S+)")


def mcp_resource(name: str, mcp: tuple[Any, float] | None, budget: int = DEFAULT_ATTACHMENT_CHARS) -> Attachment:
    """An MCP server's resource as an attachment, through the same path as a file: text within the budget,
    an image scaled, a PDF. Its content is untrusted like any file's: sent as blocks, drawn as the escaped
    summary line only."""
    match = _MCP_RESOURCE.fullmatch(name)
    assert match is not None
    from claude_magic.core import mcp as servers

    setting, timeout = mcp if mcp is not None else ({}, servers.DEFAULT_TIMEOUT)
    try:
        kind, data = servers.read_resource(setting, match["server"], match["uri"], timeout=timeout)
    except (ValueError, servers.McpUnavailable, servers.McpCallFailed) as exc:
        raise ContextError(f"-a {name}: {str(exc).removesuffix('; nothing was sent')}; nothing was sent.") from None
    if kind == "image":
        return image_attachment(name, "MCP resource image", data)
    if kind == "pdf":
        return pdf_attachment(name, data)
    return _text_attachment(name, "MCP resource", data, budget)


def _label_for(obj: Any, namespace: Mapping[str, Any]) -> str:
    for name, value in namespace.items():
        if value is obj and not name.startswith("_"):
            return name
    return type(obj).__name__


def _resolve_name(name: str, namespace: Mapping[str, Any], errors: ErrorLog, budget: int) -> Attachment:
    if name == "Err":
        text = errors.last
        if text is None:
            raise ContextError("-a Err: no cell has raised an exception yet in this kernel.")
        return _text_attachment(name, "traceback", text, budget)
    match = _ERR_INDEX.fullmatch(name)
    if match:
        try:
            return _text_attachment(name, "traceback", errors[int(match[1])], budget)
        except KeyError as exc:
            raise ContextError(f"-a {name}: {exc.args[0]}.") from None
    if _ATTACH_NAME.fullmatch(name):
        try:
            value = eval(name, dict(namespace))  # noqa: S307 - the user's own name, as in a code cell
        except (NameError, AttributeError):
            pass  # not a variable: perhaps a file (`-a data.csv`)
        except (KeyError, IndexError) as exc:
            raise ContextError(f"-a {name}: no such item ({exc}).") from None
        else:
            if _CELL_INPUT.fullmatch(name) and isinstance(value, str):
                return _text_attachment(name, "cell input", value, budget)
            return attach_value(name, value, budget)
    if _looks_like_path(name) or Path(name).expanduser().exists():
        return attach_file(name, name, budget)
    raise ContextError(f"-a {name}: no variable or file named {name!r}; nothing was sent.")


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and len(text) < 4096 and (
        "/" in text or os.sep in text or Path(text).suffix.lower() in TEXT_SUFFIXES | {".pdf", ".png", ".jpg",
                                                                                  ".jpeg", ".gif", ".webp"})


def attach_value(name: str, value: Any, budget: int = DEFAULT_ATTACHMENT_CHARS) -> Attachment:
    """One object as context, by what it is (duck-typed; none of these libraries is imported here)."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return _dataframe(name, value, budget)
    if pandas is not None and isinstance(value, pandas.Series):
        return _series(name, value, budget)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _ndarray(name, value, numpy, budget)
    figure = _matplotlib_figure(value)
    if figure is not None:
        return _figure(name, figure, "matplotlib Axes" if figure is not value else "matplotlib Figure")
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return _pil_image(name, value)
    display = sys.modules.get("IPython.display")
    if display is not None and isinstance(value, display.Image):
        return _ipython_image(name, value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        media_type = _media.sniff_media_type(data)
        if media_type in _media.IMAGE_MEDIA_TYPES:
            return image_attachment(name, "image bytes", data)
        if media_type == "application/pdf":
            return pdf_attachment(name, data)
    if isinstance(value, PurePath):
        return attach_file(name, str(value), budget)
    if isinstance(value, str):
        if _looks_like_path(value) and Path(value).expanduser().is_file():
            return attach_file(name, value, budget)
        return _text_attachment(name, "str", value, budget)
    return _text_attachment(name, f"{type(value).__name__} (repr)", _safe_repr(value), budget)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ is the user's object, not our failure
        return f"<{type(value).__name__} object; repr() raised {type(exc).__name__}: {exc}>"


# -- text ---------------------------------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def cut_to_budget(text: str, budget: int) -> tuple[str, str | None]:
    """`text` within `budget` characters, and the note saying what was cut (None when nothing was)."""
    if len(text) <= budget:
        return text, None
    note = f"cut to {budget:,} of {len(text):,} characters (attachment_chars)"
    return f"{text[:budget]}\n[… {note}]", note


def _wrap(name: str, kind: str, body: str) -> dict[str, Any]:
    label = name.replace('"', "'")
    return {"type": "text", "text": f'<attachment name="{label}" kind="{kind}">\n{body}\n</attachment>'}


def _text_attachment(name: str, kind: str, text: str, budget: int, *, size: str | None = None,
                     notes: tuple[str, ...] = ()) -> Attachment:
    body, note = cut_to_budget(text, budget)
    block = _wrap(name, kind, body)
    lines = text.count("\n") + 1 if text else 0
    return Attachment(name, kind, (block,), size or f"{lines:,} line{'s' * (lines != 1)}, {len(text):,} chars",
                      estimate_tokens(block["text"]), (*notes, note) if note else notes)


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= CELL_CHARS else f"{text[: CELL_CHARS - 1]}…"


def markdown_table(frame: Any) -> str:
    """A pandas DataFrame as a Markdown table, index first (no `tabulate` needed)."""
    header = [_cell(frame.index.name or ""), *(_cell(column) for column in frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in zip(frame.index, frame.itertuples(index=False, name=None), strict=False):
        lines.append("| " + " | ".join([_cell(index), *(_cell(value) for value in row)]) + " |")
    return "\n".join(lines)


def _fit_sections(sections: list[tuple[str, str]], budget: int) -> tuple[str, list[str]]:
    """Join (title, text) sections in order while they fit the budget; name those left out."""
    kept, cut, used = [], [], 0
    for title, text in sections:
        piece = f"{title}:\n{text}" if title else text
        if used + len(piece) + 2 <= budget:
            kept.append(piece)
            used += len(piece) + 2
        elif not kept:  # the first section alone is over the budget: keep its start
            piece, _ = cut_to_budget(piece, budget)
            kept.append(piece)
            used = budget
        else:
            cut.append(title)
    return "\n\n".join(kept), cut


def _dataframe(name: str, frame: Any, budget: int) -> Attachment:
    rows, columns = frame.shape
    notes = []
    shown = frame
    if columns > TABLE_COLUMNS:
        shown = frame.iloc[:, :TABLE_COLUMNS]
        notes.append(f"first {TABLE_COLUMNS} of {columns} columns shown")
    dtypes = ", ".join(f"{_cell(column)}: {dtype}" for column, dtype in frame.dtypes.items())
    sections = [("", f"shape: {rows:,} rows × {columns:,} columns"), ("dtypes", dtypes)]
    if rows > 2 * TABLE_ROWS:
        sections += [(f"head({TABLE_ROWS})", markdown_table(shown.head(TABLE_ROWS))),
                     (f"tail({TABLE_ROWS})", markdown_table(shown.tail(TABLE_ROWS)))]
    else:
        sections.append(("rows", markdown_table(shown)))
    numeric = shown.select_dtypes(include="number")
    if numeric.shape[1] and rows:
        sections.append(("describe() of the numeric columns", markdown_table(numeric.describe())))
    body, cut = _fit_sections(sections, budget)
    if cut:
        note = f"left out to fit {budget:,} characters: {', '.join(cut)}"
        notes.append(note)
        body += f"\n\n[{note} (attachment_chars)]"
    block = _wrap(name, "pandas DataFrame", body)
    return Attachment(name, "pandas DataFrame", (block,), f"{rows:,} rows × {columns:,} columns",
                      estimate_tokens(block["text"]), tuple(notes))


def _series(name: str, series: Any, budget: int) -> Attachment:
    frame = series.to_frame()
    sections = [("", f"length: {len(series):,}, dtype: {series.dtype}, name: {series.name!r}")]
    if len(series) > 2 * TABLE_ROWS:
        sections += [(f"head({TABLE_ROWS})", markdown_table(frame.head(TABLE_ROWS))),
                     (f"tail({TABLE_ROWS})", markdown_table(frame.tail(TABLE_ROWS)))]
    else:
        sections.append(("values", markdown_table(frame)))
    if series.dtype.kind in "iufc" and len(series):
        sections.append(("describe()", markdown_table(series.describe().to_frame())))
    body, cut = _fit_sections(sections, budget)
    notes: tuple[str, ...] = ()
    if cut:
        notes = (f"left out to fit {budget:,} characters: {', '.join(cut)}",)
        body += f"\n\n[{notes[0]} (attachment_chars)]"
    block = _wrap(name, "pandas Series", body)
    return Attachment(name, "pandas Series", (block,), f"{len(series):,} values", estimate_tokens(block["text"]),
                      notes)


def _ndarray(name: str, array: Any, numpy: Any, budget: int) -> Attachment:
    shape = "×".join(str(n) for n in array.shape) or "scalar"
    lines = [f"shape: {array.shape}, dtype: {array.dtype}, {array.size:,} elements"]
    if array.size and array.dtype.kind in "iufb":
        values = array.astype(float) if array.dtype.kind == "b" else array
        with numpy.errstate(all="ignore"):
            nans = int(numpy.isnan(values).sum()) if array.dtype.kind == "f" else 0
            lines.append(f"min {numpy.nanmin(values):.6g}, max {numpy.nanmax(values):.6g}, "
                         f"mean {numpy.nanmean(values):.6g}, std {numpy.nanstd(values):.6g}"
                         + (f", {nans:,} NaN" if nans else ""))
    lines.append("sample:\n" + numpy.array2string(array, threshold=200, edgeitems=3, max_line_width=120))
    return _text_attachment(name, "numpy array", "\n".join(lines), budget, size=f"{shape} {array.dtype}")


# -- files ----------------------------------------------------------------------------------------------------


def attach_file(name: str, path_text: str, budget: int = DEFAULT_ATTACHMENT_CHARS) -> Attachment:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise ContextError(f"-a {name}: file not found: {str(path)!r} (relative paths start at "
                           f"{os.getcwd()!r}); nothing was sent.")
    if not path.is_file():
        raise ContextError(f"-a {name}: {str(path)!r} is not a file; nothing was sent.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ContextError(f"-a {name}: cannot read {str(path)!r}: {exc.strerror or exc}; nothing was sent.") from None
    expected = _media.media_type_for_suffix(path.suffix)
    actual = _media.sniff_media_type(data)
    if expected in _media.IMAGE_MEDIA_TYPES or actual in _media.IMAGE_MEDIA_TYPES:
        if actual not in _media.IMAGE_MEDIA_TYPES:
            raise ContextError(f"-a {name}: {path.name} is not a readable PNG, JPEG, GIF or WebP image; "
                               "nothing was sent.")
        return image_attachment(name, f"{path.suffix.lstrip('.').upper() or 'image'} file", data)
    if expected == "application/pdf" or actual == "application/pdf":
        if actual != "application/pdf":
            raise ContextError(f"-a {name}: {path.name} is not a PDF (no %PDF header); nothing was sent.")
        return pdf_attachment(name, data)
    if b"\x00" in data[:8192]:
        raise ContextError(f"-a {name}: {path.name} is a binary file; attach text files, PDFs or images "
                           "(PNG, JPEG, GIF, WebP).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ContextError(f"-a {name}: {path.name} is not UTF-8 text; nothing was sent.") from None
    kind = f"{path.suffix.lstrip('.').upper()} file" if path.suffix else "text file"
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    return _text_attachment(name, kind, text, budget, size=f"{lines:,} lines, {_kb(len(data))}")


def pdf_attachment(name: str, data: bytes) -> Attachment:
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > _media.MAX_REQUEST_BYTES:
        raise ContextError(f"-a {name}: the PDF is {_kb(len(data))}, over the API's "
                           f"{_media.MAX_REQUEST_BYTES // 2**20} MB request limit once encoded; nothing was sent.")
    pages = _media.pdf_pages(data)
    if pages > _media.MAX_PDF_PAGES:
        raise ContextError(f"-a {name}: the PDF has {pages} pages; the API takes at most {_media.MAX_PDF_PAGES}. "
                           "Split it; nothing was sent.")
    blocks = (
        {"type": "text", "text": f'<attachment name="{name}" kind="PDF"> (the document follows)'},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": encoded}},
    )
    size = f"{pages} page{'s' * (pages != 1)}, {_kb(len(data))}" if pages else _kb(len(data))
    return Attachment(name, "PDF", blocks, size, _media.pdf_tokens(data))


# -- images ---------------------------------------------------------------------------------------------------


def _matplotlib_figure(value: Any) -> Any:
    figure_module = sys.modules.get("matplotlib.figure")
    axes_module = sys.modules.get("matplotlib.axes")
    if figure_module is not None and isinstance(value, figure_module.Figure):
        return value
    if axes_module is not None and isinstance(value, axes_module.Axes):
        return value.figure
    return None


def _figure(name: str, figure: Any, kind: str) -> Attachment:
    buffer = io.BytesIO()
    # No "Software" metadata: the same figure gives the same bytes whatever matplotlib version drew it.
    figure.savefig(buffer, format="png", dpi=figure.dpi, metadata={"Software": None})
    return image_attachment(name, kind, buffer.getvalue())


def _pil_image(name: str, image: Any) -> Attachment:
    buffer = io.BytesIO()
    if image.format == "JPEG":
        image.save(buffer, format="JPEG", quality=90)
    else:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        image.save(buffer, format="PNG")
    return image_attachment(name, "PIL Image", buffer.getvalue())


def _ipython_image(name: str, image: Any) -> Attachment:
    data = image.data
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ContextError(f"-a {name}: this IPython Image has no data of its own (a URL?); attach a file or "
                           "bytes instead.")
    if _media.sniff_media_type(bytes(data)) not in _media.IMAGE_MEDIA_TYPES:
        raise ContextError(f"-a {name}: the IPython Image is not PNG, JPEG, GIF or WebP data; nothing was sent.")
    return image_attachment(name, "IPython Image", bytes(data))


def pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401 - only whether it can be imported
    except ImportError:
        return False
    return True


def image_attachment(name: str, kind: str, data: bytes, *, max_edge: int = _media.MAX_IMAGE_EDGE) -> Attachment:
    """An image content block, scaled down (with Pillow) when it is larger than the API takes or uses."""
    media_type = _media.sniff_media_type(data)
    if media_type not in _media.IMAGE_MEDIA_TYPES:
        raise ContextError(f"-a {name}: not a PNG, JPEG, GIF or WebP image; nothing was sent.")
    size = _media.image_size(data)
    if size is None and pillow_available():
        size = _pillow_size(name, data)
    over_limit = (_media.base64_length(len(data)) > _media.MAX_IMAGE_BASE64_BYTES
                  or (size is not None and max(size) > max_edge))
    worth_scaling = size is not None and _media.recommended_size(*size) != size
    notes: tuple[str, ...] = ()
    if over_limit or worth_scaling:
        if pillow_available():
            original = size
            data, media_type, size = _scaled(name, data, media_type, size)
            notes = (f"scaled from {original[0]}×{original[1]} px" if original else "scaled down",)
        elif over_limit:
            shown = f"{size[0]}×{size[1]} px, " if size else ""
            raise ContextError(f"-a {name}: the image ({shown}{_kb(len(data))}) is over the API's limit "
                               f"({max_edge}×{max_edge} px, {_media.MAX_IMAGE_BASE64_BYTES // 2**20} MB base64) "
                               "and needs scaling: pip install pillow, or attach a smaller image.")
        else:
            notes = ("not scaled (Pillow is not installed): the API scales it, which adds latency",)
    encoded = base64.b64encode(data).decode("ascii")
    if len(encoded) > _media.MAX_IMAGE_BASE64_BYTES:
        raise ContextError(f"-a {name}: the image is still {_kb(len(data))} after scaling, over the API's "
                           f"{_media.MAX_IMAGE_BASE64_BYTES // 2**20} MB limit; nothing was sent.")
    label = media_type.split("/")[1].upper()
    dims = f"{size[0]}×{size[1]} px, " if size else ""
    blocks = (
        {"type": "text", "text": f'<attachment name="{name}" kind="{kind}"> (the image follows)'},
        {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}},
    )
    tokens = _media.image_tokens(*size) if size else 1_600
    return Attachment(name, kind, blocks, f"{label} {dims}{_kb(len(data))}", tokens + 20, notes)


def _pillow_size(name: str, data: bytes) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.width), int(image.height)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the file's
        raise ContextError(f"-a {name}: the image cannot be read ({exc}); nothing was sent.") from None


def _scaled(name: str, data: bytes, media_type: str,
            size: tuple[int, int] | None) -> tuple[bytes, str, tuple[int, int]]:
    """Pillow scales to the size the API would use (long edge 1568 px, ~1.15 MP), keeping the format
    (a GIF becomes a PNG: its first frame is what a still image holds)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = opened.copy()
    except Exception as exc:  # noqa: BLE001
        raise ContextError(f"-a {name}: the image cannot be read ({exc}); nothing was sent.") from None
    target = _media.recommended_size(image.width, image.height)
    image.thumbnail(target, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if media_type == "image/jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
    elif media_type == "image/webp":
        image.save(buffer, format="WEBP", quality=85)
    else:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            image = image.convert("RGBA")
        image.save(buffer, format="PNG", optimize=True)
        media_type = "image/png"
    return buffer.getvalue(), media_type, (image.width, image.height)


def _kb(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size / 2**20:.1f} MB"


# -- history --------------------------------------------------------------------------------------------------


def without_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with image and document blocks replaced by a short text note (older turns, to save tokens)."""
    result = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(_is_media(block) for block in content):
            content = [{"type": "text", "text": "[an attached image or document was here; dropped from history "
                        "to save tokens]"} if _is_media(block) else block for block in content]
            message = {**message, "content": content}
        result.append(message)
    return result


def _is_media(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in ("image", "document")


__all__ = ["ERRORS", "Attachment", "ContextError", "ErrorLog", "attach_file", "attach_objects", "attach_value",
           "format_traceback", "image_attachment", "interpolate", "markdown_table", "resolve_attachments",
           "split_names", "summary_line", "user_content", "without_images"]
