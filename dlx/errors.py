"""The one user-facing error type: its message is a single line naming what was wrong."""


class DlxError(Exception):
    """Bad input or an unrecoverable run state; the CLI prints it as one line and exits with 2."""


def missing_key(group: str, name: str, error: AttributeError) -> DlxError:
    """The error for a builder that read a key its config group lacks (ConfigDict's AttributeError)."""
    key = str(error).strip("\"'")
    return DlxError(f"{group}.name={name!r} needs the key {group}.{key}, which the config lacks")
