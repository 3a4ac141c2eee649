"""User-facing errors: the command-line entry points print their message on one line and exit 1."""


class LabError(Exception):
    """Base of every error that is the user's to fix, not a bug."""


class ConfigError(LabError, ValueError):
    """A configuration value is invalid; the message names the key and the allowed values."""


class DataNotFoundError(LabError, FileNotFoundError):
    """A dataset is missing; the message names the path searched and how to get the data."""


class WeightsNotFoundError(LabError, FileNotFoundError):
    """A weights file is missing; the message names the file and where to put it."""


class CheckpointError(LabError):
    """A checkpoint is missing, truncated or unsafe to load."""


class TrainingDivergedError(LabError):
    """The loss stayed NaN or infinite for too many consecutive steps."""
