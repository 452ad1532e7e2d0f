"""Names shared by the client and the bundled emulator."""

EMULATOR_HEADER = "x-claude-magic-emulator"
"""Response header the emulator sets, so footers can say an answer did not come from Claude."""

CASSETTE_MODES = ("replay_or_record", "replay", "record")
"""How a cassette is used (core.transport); the first is the default. Here, at the bottom, so the settings
can list them without importing the transport (and with it the HTTP stack) when the extension loads."""
