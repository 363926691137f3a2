"""Exceptions with messages a user can act on (file, field, allowed values)."""


class BitswarmError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class ConfigError(BitswarmError, ValueError):
    """A configuration file or value is invalid."""

    def __init__(self, source: str, field: str, problem: str, allowed: str | None = None):
        msg = f"{source}: field '{field}': {problem}"
        if allowed:
            msg += f"; allowed: {allowed}"
        super().__init__(msg)
        self.source, self.field, self.problem, self.allowed = source, field, problem, allowed


class DataError(BitswarmError, FileNotFoundError):
    """A dataset is missing or malformed."""


class ToolMissingError(BitswarmError, RuntimeError):
    """A vendor tool (Vivado, Vitis, a cross compiler) needed by a step is not installed."""
