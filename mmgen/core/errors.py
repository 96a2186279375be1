"""Exceptions the CLI reports as one clear line (plus ValueError / FileNotFoundError / OSError)."""


class MmgenError(Exception):
    """A user-facing error: bad input, a missing file, a config that does not fit the checkpoint."""
