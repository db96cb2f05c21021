"""The error family of the core: each error says what went wrong and how to fix it."""


class FewShotError(Exception):
    """Base of every error the core raises on purpose."""


class ConfigError(FewShotError, ValueError):
    """A configuration value or key is wrong."""


class DataError(FewShotError):
    """A dataset folder is missing, empty or too small for the request."""


class ImageLoadError(FewShotError):
    """One image could not be read; the message says why, in words a user understands."""


class CheckpointError(FewShotError):
    """A checkpoint or model card is missing, unsafe or inconsistent."""


class ExportError(FewShotError):
    """Exporting or undoing an export failed for one file or for the whole destination."""
