"""Names shared by the client and the bundled emulator."""

EMULATOR_HEADER = "x-claude-magic-emulator"
"""Response header the emulator sets, so footers can say an answer did not come from Claude."""
