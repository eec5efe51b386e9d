"""Typed errors: the CLI turns each into one line on stderr and exit code 2."""

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MissingExtraError",
    "PhysganError",
    "TrainingDiverged",
    "WorkerFailed",
]


class PhysganError(Exception):
    """Base of every error physgan raises on purpose (bad input, not a bug)."""


class ConfigError(PhysganError, ValueError):
    """A configuration key, type or value is wrong."""


class DataError(PhysganError, ValueError):
    """Input data are missing, malformed or hold non-finite values."""


class MissingExtraError(PhysganError, ImportError):
    """An optional dependency is needed; the message names the extra to install."""


class CheckpointError(PhysganError):
    """A checkpoint or run directory is missing, corrupt or does not match the config."""


class TrainingDiverged(PhysganError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class WorkerFailed(PhysganError):
    """A rank of a multi-process run failed; the message is that rank's own one line."""
