"""JupyterLab as a subprocess, driven by Playwright with Debian's Chromium.

- :class:`JupyterLab` starts ``python -m jupyterlab`` on a free loopback port with a random token, isolated
  from the machine's Jupyter state: its own root dir, workspaces dir, user-settings dir, runtime dir and
  config dir (all temporary), news/update checks off. ``comm_subshells=False`` writes the user setting
  ``@jupyterlab/apputils-extension:kernels-settings`` -> ``commsOverSubshells: "disabled"`` into that
  temporary user-settings dir (nothing in the Python environment is modified).
- :class:`Notebook7` is the same for Jupyter Notebook 7 (``python -m notebook``).
- :class:`Browser` wraps sync Playwright + ``/usr/bin/chromium``.
- :class:`LabNotebook` holds the helpers for one notebook page (JupyterLab or Notebook 7).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "Browser",
    "JupyterLab",
    "LabNotebook",
    "Notebook7",
    "artifacts_dir",
    "repo_root",
    "write_notebook",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

KERNELS_SETTINGS_PLUGIN = "@jupyterlab/apputils-extension:kernels-settings"
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"

_COMM_SUBSHELL_MODES = {True: "perCommTarget", False: "disabled"}


def repo_root() -> Path:
    """The repository root (the directory holding pyproject.toml)."""
    return Path(__file__).resolve().parents[2]


def artifacts_dir(test_name: str, clean: bool = False) -> Path:
    """``test-artifacts/<test_name>/`` under the repo root (gitignored), created. Characters that are awkward
    in paths (pytest parametrisation brackets, ``::``, ``/``) are replaced by ``_``. ``clean=True`` empties
    it first, so it only holds the latest run's files."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", test_name).strip("_") or "unnamed"
    path = repo_root() / "test-artifacts" / safe
    if clean and path.exists():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------------------
# Notebook files
# ---------------------------------------------------------------------------------------------------------


def write_notebook(path: str | os.PathLike[str], cells: Sequence[str | tuple[str, str]]) -> Path:
    """Write an nbformat v4 notebook with a python3 kernelspec.

    Each cell is a string (a code cell) or a ``(cell_type, source)`` tuple with cell_type ``"code"``,
    ``"markdown"`` or ``"raw"``.
    """
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    makers = {"code": v4.new_code_cell, "markdown": v4.new_markdown_cell, "raw": v4.new_raw_cell}
    for cell in cells:
        kind, source = ("code", cell) if isinstance(cell, str) else cell
        if kind not in makers:
            raise ValueError(f"unknown cell type {kind!r}")
        nb.cells.append(makers[kind](source))
    nbformat.validate(nb)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    return out


# ---------------------------------------------------------------------------------------------------------
# JupyterLab server
# ---------------------------------------------------------------------------------------------------------


class JupyterLab:
    """A JupyterLab server subprocess on ``127.0.0.1:<free port>`` with a random token.

    Parameters
    ----------
    root_dir: the server's root (notebooks are opened relative to it); a temp dir if None (removed at stop).
    env: extra environment variables for the server and therefore its kernels (e.g. ANTHROPIC_BASE_URL).
    comm_subshells: None keeps JupyterLab's default (``perCommTarget`` in 4.4+); False sets
        ``commsOverSubshells: "disabled"``, True ``"perCommTarget"``; a string is used as the value as is
        (``"disabled"``, ``"perComm"``, ``"perCommTarget"``).
    user_settings: more user settings, ``{"@scope/ext:plugin": {key: value}}``.
    log_dir: where ``jupyterlab-<port>.log`` goes; default ``test-artifacts/jupyterlab``.
    expose_app: ``--LabApp.expose_app_in_browser`` so tests can read ``window.jupyterapp``.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        comm_subshells: bool | str | None = None,
        user_settings: Mapping[str, Mapping[str, Any]] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 90,
        expose_app: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._own_root = root_dir is None
        self._root_arg = root_dir
        self.env = dict(env or {})
        self.comm_subshells = comm_subshells
        self.user_settings = {k: dict(v) for k, v in (user_settings or {}).items()}
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.startup_timeout = startup_timeout
        self.expose_app = expose_app
        self.extra_args = list(extra_args)
        self.port = 0
        self.token = ""
        self.url = ""
        self.root_dir = Path()
        self.log_path: Path | None = None
        self.startup_seconds = 0.0
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._log_file: Any = None
        self._stopped = False

    # -- settings ---------------------------------------------------------------------------------------------

    def settings_to_write(self) -> dict[str, dict[str, Any]]:
        """User settings written for this server: plugin id -> values."""
        settings: dict[str, dict[str, Any]] = {
            # No "would you like to receive news?" toast over the notebook, no requests to the internet.
            NOTIFICATION_PLUGIN: {"fetchNews": "false", "checkForUpdates": False},
        }
        if self.comm_subshells is not None:
            mode = (
                self.comm_subshells
                if isinstance(self.comm_subshells, str)
                else _COMM_SUBSHELL_MODES[bool(self.comm_subshells)]
            )
            settings[KERNELS_SETTINGS_PLUGIN] = {"commsOverSubshells": mode}
        for plugin, values in self.user_settings.items():
            settings.setdefault(plugin, {}).update(values)
        return settings

    @staticmethod
    def _write_user_settings(settings_dir: Path, settings: Mapping[str, Mapping[str, Any]]) -> None:
        # Layout of JupyterLab's user-settings dir: <dir>/@scope/extension/plugin.jupyterlab-settings
        for plugin_id, values in settings.items():
            package, _, plugin = plugin_id.partition(":")
            target = settings_dir.joinpath(*package.split("/"), f"{plugin}.jupyterlab-settings")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values, indent=2))

    # -- lifecycle --------------------------------------------------------------------------------------------

    def __enter__(self) -> JupyterLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> JupyterLab:
        if self.proc is not None:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="jlab-harness-"))
        if self._own_root:
            self.root_dir = self._tmp / "root"
            self.root_dir.mkdir()
        else:
            self.root_dir = Path(os.fspath(self._root_arg)).resolve()  # type: ignore[arg-type]
        workspaces = self._tmp / "workspaces"
        settings_dir = self._tmp / "user-settings"
        runtime = self._tmp / "runtime"
        config = self._tmp / "config"
        for d in (workspaces, settings_dir, runtime, config):
            d.mkdir()
        self._write_user_settings(settings_dir, self.settings_to_write())

        self.port = _free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = self.log_dir or artifacts_dir("jupyterlab")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"jupyterlab-{self.port}.log"

        cmd = [
            sys.executable,
            "-m",
            self.module,
            "--no-browser",
            "--ServerApp.open_browser=False",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.workspaces_dir={workspaces}",
            f"--LabApp.user_settings_dir={settings_dir}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.expose_app_in_browser={self.expose_app}",
            "--LabApp.extension_manager=readonly",  # no PyPI queries from the extension manager
            *self.app_args(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI and these machines run as root
        cmd += self.extra_args
        env = dict(os.environ)
        env.update(
            {
                "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
                "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
                "JUPYTER_RUNTIME_DIR": str(runtime),
                "JUPYTER_CONFIG_DIR": str(config),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log_file.write(("$ " + " ".join(cmd) + "\n").encode())
        self._log_file.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(self.root_dir),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can kill everything it started
        )
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode} during startup:\n{self.log_tail()}")
            try:
                self.api("/api/status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise TimeoutError(
            f"JupyterLab did not answer /api/status within {self.startup_timeout} s ({last_error!r}):\n"
            f"{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Shut down kernels and the server (REST shutdown, then SIGTERM/SIGKILL to its process group) and
        remove the temporary directories. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # /api/shutdown also shuts down the kernels (they run in their own sessions, so a process
            # group kill would not reach them; they'd only notice the parent's death later).
            with contextlib.suppress(Exception):
                self.api("/api/shutdown", method="POST", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(timeout=wait)
                    # The leader is gone; still signal the group once more for stragglers.
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- REST -------------------------------------------------------------------------------------------------

    def api(self, path: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
        """Call the server's REST API with the token; returns decoded JSON (or None for an empty body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def plugin_settings(self, plugin_id: str) -> dict[str, Any]:
        """The server's view of a plugin's settings: ``{"raw", "settings", "schema", ...}``."""
        result: dict[str, Any] = self.api(f"/lab/api/settings/{plugin_id}")
        return result

    def notebook_url(self, name: str) -> str:
        """URL opening ``name`` (relative to root_dir) in a fresh workspace (``&reset``)."""
        quoted = urllib.parse.quote(name)
        return f"{self.url}/lab/tree/{quoted}?token={self.token}&reset"

    # -- what differs between the Jupyter apps on this server -------------------------------------------------

    module = "jupyterlab"  # run as ``python -m <module>``

    def app_args(self) -> list[str]:
        """Command-line options of the app itself (the server and LabApp options above apply to both apps)."""
        return []


class Notebook7(JupyterLab):
    """Jupyter Notebook 7 (``python -m notebook``, the ``notebook`` package) on the same isolated set-up.

    Notebook 7 is built from JupyterLab's components: the same server, user-settings and workspaces dirs
    (the ``JUPYTERLAB_*`` variables), the same ``.jp-Cell`` / ``.jp-OutputArea`` DOM, so
    :class:`LabNotebook` drives it too. Differences: one document per browser page, opened at
    ``/notebooks/NAME.ipynb``, and its own ``JupyterNotebookApp.expose_app_in_browser``. The JupyterLab
    server extension is loaded alongside (the LabApp options still apply to it).
    """

    module = "notebook"

    def app_args(self) -> list[str]:
        return [f"--JupyterNotebookApp.expose_app_in_browser={self.expose_app}"]

    def notebook_url(self, name: str) -> str:
        quoted = urllib.parse.quote(name)
        return f"{self.url}/notebooks/{quoted}?token={self.token}"


# ---------------------------------------------------------------------------------------------------------
# Browser
# ---------------------------------------------------------------------------------------------------------


class Browser:
    """Sync Playwright driving ``/usr/bin/chromium`` (never ``playwright install``).

    Each :meth:`new_page` gets its own browser context (fresh storage). Context manager; :meth:`close`
    is idempotent."""

    def __init__(
        self,
        headless: bool = True,
        executable_path: str = CHROMIUM,
        args: Sequence[str] = CHROMIUM_ARGS,
        slow_mo: float | None = None,
    ) -> None:
        self.headless = headless
        self.executable_path = executable_path
        self.args = list(args)
        self.slow_mo = slow_mo
        self._pw: Any = None
        self.browser: Any = None
        self._contexts: list[Any] = []

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Browser:
        if self.browser is not None:
            return self
        if not Path(self.executable_path).exists():
            raise FileNotFoundError(
                f"{self.executable_path} not found: install Debian's chromium (apt-get install -y chromium)"
            )
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(
                executable_path=self.executable_path,
                headless=self.headless,
                args=self.args,
                slow_mo=self.slow_mo,
            )
        except BaseException:
            self._pw.stop()
            self._pw = None
            raise
        return self

    def new_page(self, viewport: tuple[int, int] = (1280, 900)) -> Any:
        """A new page (playwright.sync_api.Page) in a new context. Console messages and page errors are
        collected into ``page.harness_console`` (a list of strings)."""
        self.start()
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self._contexts.append(context)
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
        page.harness_console = console
        return page

    def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                context.close()
        self._contexts.clear()
        if self.browser is not None:
            with contextlib.suppress(Exception):
                self.browser.close()
            self.browser = None
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
            self._pw = None


# ---------------------------------------------------------------------------------------------------------
# Notebook page helpers
# ---------------------------------------------------------------------------------------------------------

_PROMPT_DONE = re.compile(r"\[\d+\]")


class LabNotebook:
    """Helpers for one notebook open in JupyterLab.

    ``LabNotebook(page).open(lab, "x.ipynb")`` navigates, waits for the visible notebook and an idle kernel.
    Locators are scoped to the visible notebook panel (``.jp-NotebookPanel:visible``)."""

    PANEL = ".jp-NotebookPanel >> visible=true"

    def __init__(self, page: Any) -> None:
        self.page = page
        self.lab: JupyterLab | None = None
        self.name = ""
        self.open_seconds = 0.0

    # -- locators ---------------------------------------------------------------------------------------------

    @property
    def panel(self) -> Any:
        return self.page.locator(self.PANEL)

    @property
    def notebook(self) -> Any:
        return self.panel.locator(".jp-Notebook")

    def cells(self) -> Any:
        return self.notebook.locator(".jp-Cell")

    def cell(self, index: int) -> Any:
        return self.cells().nth(index)

    def output(self, index: int) -> Any:
        """Locator of the ``.jp-OutputArea-output`` elements inside cell ``index``."""
        return self.cell(index).locator(".jp-OutputArea-output")

    def prompt(self, index: int) -> Any:
        return self.cell(index).locator(".jp-InputPrompt")

    def kernel_indicator(self) -> Any:
        return self.panel.locator(".jp-Notebook-ExecutionIndicator")

    # -- navigation -------------------------------------------------------------------------------------------

    def open(self, lab: JupyterLab, name: str, timeout: float = 60, reload: bool = True) -> LabNotebook:
        """Open notebook ``name`` (relative to ``lab.root_dir``) and wait for it to be visible with an idle
        kernel. ``reload=True`` navigates to ``lab.notebook_url(name)`` (fresh workspace, ~4 s: the whole
        app loads). ``reload=False`` opens it inside the already loaded app when this page already shows
        ``lab`` with ``expose_app`` (~1 s; the other notebooks stay open in hidden tabs)."""
        t0 = time.monotonic()
        in_app = not reload and self.page.url.startswith(lab.url + "/") and self.has_app()
        self.lab = lab
        self.name = name
        if in_app:
            # Do not await the command's promise: it resolves seconds after the notebook is usable.
            self.page.evaluate(
                "(p) => { window.jupyterapp.commands.execute('docmanager:open', {path: p}); }",
                name,
            )
            self.page.wait_for_function(
                """(p) => {
                    const w = window.jupyterapp.shell.currentWidget;
                    return !!w && !!w.context && w.context.path === p && w.isVisible;
                }""",
                arg=name,
                timeout=timeout * 1000,
            )
        else:
            self.page.goto(lab.notebook_url(name), timeout=timeout * 1000)
        self.page.locator(".jp-Notebook >> visible=true").first.wait_for(timeout=timeout * 1000)
        self.wait_kernel_idle(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        self.open_seconds = time.monotonic() - t0
        return self

    def kernel_status(self) -> str | None:
        """``data-status`` of the toolbar's kernel indicator (idle, busy, starting, ...)."""
        loc = self.kernel_indicator()
        if loc.count() == 0:
            return None
        status: str | None = loc.first.get_attribute("data-status")
        return status

    def wait_kernel_idle(self, timeout: float = 60) -> None:
        """Wait until the notebook's kernel is connected and idle."""
        self.panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=timeout * 1000)
        if self.has_app():
            self.page.wait_for_function(
                """() => {
                    const w = window.jupyterapp.shell.currentWidget;
                    const k = w && w.sessionContext && w.sessionContext.session
                        && w.sessionContext.session.kernel;
                    return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
                }""",
                timeout=timeout * 1000,
            )

    def has_app(self) -> bool:
        return bool(self.page.evaluate("() => !!window.jupyterapp"))

    def eval_app(self, expression: str) -> Any:
        """Evaluate a JS function body's expression with ``app`` = window.jupyterapp (needs expose_app)."""
        return self.page.evaluate(f"() => {{ const app = window.jupyterapp; return ({expression}); }}")

    def comms_over_subshells(self) -> str:
        """The ``commsOverSubshells`` mode the kernel manager in the page actually uses."""
        mode: str = self.eval_app("app.serviceManager.kernels.commsOverSubshells")
        return mode

    # -- running ----------------------------------------------------------------------------------------------

    def select_cell(self, index: int) -> None:
        """Select cell ``index`` in command mode (click its input prompt)."""
        self.page.keyboard.press("Escape")
        self.prompt(index).click()

    def run_cell(self, index: int, wait: bool = True, timeout: float = 60) -> None:
        """Select cell ``index`` and run it in place (Ctrl+Enter: no new cell is added). With ``wait``,
        return once its prompt shows a new execution count."""
        before = self.prompt(index).inner_text().strip()
        self.select_cell(index)
        self.page.keyboard.press("Control+Enter")
        if wait:
            self.wait_cell_done(index, before=before, timeout=timeout)

    def wait_cell_done(self, index: int, before: str | None = None, timeout: float = 60) -> None:
        """Wait until cell ``index``'s prompt is ``[n]:`` (and differs from ``before`` if given)."""
        self.page.wait_for_function(
            """([el, before]) => {
                const t = el.innerText.trim();
                return /\\[\\d+\\]/.test(t) && t !== before;
            }""",
            arg=[self.prompt(index).element_handle(timeout=timeout * 1000), before],
            timeout=timeout * 1000,
        )

    def run_all(self, timeout: float = 120) -> None:
        """Run all cells (command ``notebook:run-all-cells``) and wait for every code cell and the kernel."""
        n = self.cells().count()
        befores = [self.prompt(i).inner_text().strip() for i in range(n)]
        if self.has_app():
            self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        else:
            self.page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            self.page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        deadline = time.monotonic() + timeout
        for i in range(n):
            if "jp-CodeCell" not in (self.cell(i).get_attribute("class") or ""):
                continue
            self.wait_cell_done(i, before=befores[i], timeout=max(1.0, deadline - time.monotonic()))
        self.wait_kernel_idle(timeout=max(1.0, deadline - time.monotonic()))

    def set_cell_source(self, index: int, text: str) -> None:
        """Replace cell ``index``'s source exactly (through the shared model when the app is exposed,
        else select-all + insert_text in the editor)."""
        if self.has_app():
            self.page.evaluate(
                """([i, text]) => {
                    const nb = window.jupyterapp.shell.currentWidget.content;
                    nb.widgets[i].model.sharedModel.setSource(text);
                }""",
                [index, text],
            )
        else:
            editor = self.cell(index).locator(".cm-content")
            editor.click()
            self.page.keyboard.press("Control+a")
            self.page.keyboard.insert_text(text)
            self.page.keyboard.press("Escape")

    def cell_source(self, index: int) -> str:
        if self.has_app():
            source: str = self.page.evaluate(
                "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()",
                index,
            )
            return source
        lines: list[str] = self.cell(index).locator(".cm-content .cm-line").all_inner_texts()
        return "\n".join(line.replace("\n", "") for line in lines)

    def wait_output_text(self, index: int, text: str | re.Pattern[str], timeout: float = 30) -> Any:
        """Wait until an output of cell ``index`` contains ``text``; returns that output's locator."""
        loc = self.output(index).filter(has_text=text).first
        loc.wait_for(state="visible", timeout=timeout * 1000)
        return loc

    def output_texts(self, index: int) -> list[str]:
        texts: list[str] = self.output(index).all_inner_texts()
        return texts

    def watch_output(self, index: int, until: str) -> str:
        """Start recording, in the page, every text cell ``index``'s outputs show, until one contains
        ``until``; returns a key for :meth:`watched_states`. A MutationObserver notes each change as the
        page applies it, so short-lived states are seen however busy the test machine is (no polling)."""
        key = f"w{index}-{time.monotonic_ns()}"
        self.page.evaluate(
            """([cell, key, until]) => {
                const watches = (window.__harnessWatches = window.__harnessWatches || {});
                const record = (watches[key] = {states: [], done: false});
                const read = () => Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
                    .map((el) => el.innerText).join('\\n');
                const observer = new MutationObserver(() => note());
                const note = () => {
                    const text = read();
                    if (!record.states.length || record.states[record.states.length - 1] !== text) {
                        record.states.push(text);
                    }
                    if (text.includes(until)) { record.done = true; observer.disconnect(); }
                };
                observer.observe(cell, {childList: true, subtree: true, characterData: true});
                note();
            }""",
            [self.cell(index).element_handle(), key, until],
        )
        return key

    def watched_states(self, key: str, timeout: float = 60) -> list[str]:
        """Wait until the watch ``key`` saw its text, then return the distinct texts it recorded, in order."""
        self.page.wait_for_function("(key) => window.__harnessWatches[key].done", arg=key, timeout=timeout * 1000)
        states: list[str] = self.page.evaluate("(key) => window.__harnessWatches[key].states", key)
        return states

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(out), full_page=full_page)
        return out

    def save_console(self, path: str | os.PathLike[str]) -> Path:
        """Write the page's collected console messages (see Browser.new_page) to a file."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(getattr(self.page, "harness_console", [])) + "\n")
        return out
