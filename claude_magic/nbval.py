"""nbval and notebooks that ask Claude: the sanitize file that masks what a replayed run cannot reproduce.

    pytest --nbval analysis.ipynb --nbval-sanitize-with "$(python -m claude_magic.nbval)"

Record the notebook once with a cassette (`%config ClaudeMagic.cassette = "analysis.cassette"`, see
`claude_magic.core.transport`), commit both, and nbval replays it with no key and no network. Run it with
`CLAUDE_MAGIC_DISPLAY=final`: nbval compares the outputs a cell first sends and ignores display updates.
"""

from __future__ import annotations

from pathlib import Path

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")

if __name__ == "__main__":
    print(SANITIZE_FILE)
