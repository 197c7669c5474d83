"""One exception type for every user-facing problem.

The CLI prints ``error: <message>`` on one line and exits non-zero for these; the message always names the
thing that is wrong (a file, a config key, a dataset) and what to do about it.
"""


class TrsposeError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""


class DataError(TrsposeError):
    """Missing, unreadable or malformed data: annotation files, images, split files, datasets."""


class ConfigError(TrsposeError):
    """Unknown config keys, wrong types, invalid values."""


class TrainingError(TrsposeError):
    """Training cannot go on (non-finite loss, existing run folder, incompatible checkpoint)."""


class WriteError(TrsposeError):
    """A file could not be written (a full disk, no permission); the message names it and the free space."""
