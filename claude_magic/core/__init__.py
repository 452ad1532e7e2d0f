"""The turn itself, with no IPython display and no widgets: the state and its reducer, the engine that
runs an exchange for every surface, streaming and retries, history, the client and the request."""
