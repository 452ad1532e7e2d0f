"""Stream Claude's answers live into Jupyter.

    %load_ext claude_magic
    %%claude
    Explain HTTP caching in three bullet points.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """Register %%claude / %claude (called by `%load_ext claude_magic`).

    Quick: the SDK and the renderers are imported by a background warm-up that starts here
    (`claude_magic/surfaces/warm_up.py`), not before this returns."""
    from claude_magic.settings import register_settings
    from claude_magic.surfaces import warm_up
    from claude_magic.surfaces.magic import ClaudeMagics, keep_empty_cells, keep_question_marks

    # The settings go in the shell's `configurables` (what %config searches); every surface reads them.
    settings = register_settings(ipython)
    ipython.register_magics(ClaudeMagics(shell=ipython, settings=settings))
    for transform in (keep_question_marks, keep_empty_cells):
        if transform not in ipython.input_transformers_cleanup:
            ipython.input_transformers_cleanup.append(transform)
    _record_errors(ipython)
    _follow_deleted_cells(ipython)
    from claude_magic.core.persist import install

    install(lambda: settings.history_dir)  # every committed turn is saved from now on
    warm_up.start(settings)


def _follow_deleted_cells(ipython: Any) -> None:
    """Cells deleted in the notebook drop their turns: JupyterLab lists them with the next execute request,
    whatever that cell runs, so a pre_run_cell hook reads them."""
    from claude_magic.core.history import STORE
    from claude_magic.surfaces.display import deleted_cell_ids

    if getattr(ipython, "_claude_magic_cells_hook", None) is not None:
        return

    def hook(*_info: Any) -> None:
        deleted = deleted_cell_ids(ipython)
        if deleted:
            for conversation in STORE.conversations():
                conversation.drop_owned_by(deleted)

    ipython._claude_magic_cells_hook = hook
    ipython.events.register("pre_run_cell", hook)


def _record_errors(ipython: Any) -> None:
    """Keep each failing cell's traceback by execution count (`{Err[3]}`, `-a Err`): a post_run_cell hook."""
    from claude_magic.core.context import ERRORS

    hook = getattr(ipython, "_claude_magic_error_hook", None)
    if hook is None:  # once per shell: loading the extension again must not record twice
        def hook(result: Any) -> None:
            ERRORS.record(result, ipython)

        ipython._claude_magic_error_hook = hook
        ipython.events.register("post_run_cell", hook)


# Public names and the module defining each; imported on first use, so `import claude_magic` stays cheap
# (the panel pulls in ipywidgets, the API the SDK).
_LAZY = {
    "ask": "surfaces.api",
    "ask_async": "surfaces.api",
    "map": "surfaces.api",
    "map_async": "surfaces.api",
    "ClaudeError": "core.errors",
    "ClaudeInterrupted": "core.errors",
    "last_map": "surfaces.api",
    "prompts_from": "surfaces.replies",
    "Replies": "surfaces.replies",
    "batch_results": "surfaces.batch_jobs",
    "Reply": "surfaces.reply",
    "ChatPanel": "surfaces.panel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'claude_magic' has no attribute {name!r}")
    import importlib

    from claude_magic.surfaces import warm_up

    warm_up.wait()  # these modules import what a running warm-up is importing: never both threads at once
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = ["ChatPanel", "ClaudeError", "ClaudeInterrupted", "Replies", "Reply", "ask", "ask_async", "batch_results",
           "last_map", "load_ipython_extension", "map", "map_async", "prompts_from"]
