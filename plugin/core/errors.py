"""Exceptions of the core. Every message says what is wrong and what is expected."""


class EnmapCompressError(Exception):
    """Base class: a problem the user can act on (shown as one clear message, never a traceback)."""


class InputError(EnmapCompressError):
    """The input raster, product folder, XML or ZIP cannot be used."""


class FormatError(EnmapCompressError):
    """A compressed .ehc file is truncated, corrupt, of an unknown version or otherwise unreadable."""


class ModelError(EnmapCompressError):
    """A model is missing, broken, or does not fit the data."""


class ModelNotFoundError(ModelError):
    """The model a file was made with (or the one asked for) is not installed."""


class DeviceError(EnmapCompressError):
    """The requested compute device (for example CUDA) is not available."""


class OutputError(EnmapCompressError):
    """The output cannot be written (read-only folder, disk full, bad extension)."""


class CancelledError(EnmapCompressError):
    """The user cancelled the run; nothing was written."""


def os_error_text(exc):
    """One line for an OSError the core did not turn into one of its own (a file it does not open itself, a
    network share failing mid-run): what happened, and to which file."""
    return f'{exc.strerror or exc}: {exc.filename}' if exc.filename else str(exc)
