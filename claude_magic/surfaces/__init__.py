"""Where turns are asked and drawn: the magic, the chat panel, the Python API, and their sinks."""
