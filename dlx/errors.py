"""The one user-facing error type: its message is a single line naming what was wrong."""


class DlxError(Exception):
    """Bad input or an unrecoverable run state; the CLI prints it as one line and exits with 2."""
