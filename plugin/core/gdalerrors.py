"""GDAL calls whose failures become one clear message, whatever GDAL's exception mode.

QGIS and every plugin share one GDAL in one process. gdal.UseExceptions() or DontUseExceptions() would change
how their calls fail (and theirs how ours fail), so the core never switches the mode: a block of GDAL calls runs
under an error handler of this thread that records GDAL's failure messages instead of printing them, a failure is
read from those messages (and from results the caller checks), and the RuntimeError that GDAL raises when someone
else turned exceptions on is caught the same way. The handler is popped when the block ends.
"""
import contextlib
import errno
import os
import shutil

from osgeo import gdal

LOW_SPACE_BYTES = 16 * 2 ** 20  # a write that failed with less free space than this failed for lack of space


class GdalError(Exception):
    """A GDAL call failed; str() is GDAL's message."""


class _Recorder:
    def __init__(self):
        self.failures = []

    def __call__(self, error_class, error_number, message):
        if error_class >= gdal.CE_Failure:
            self.failures.append(' '.join(str(message).split()))


@contextlib.contextmanager
def checked():
    """Run a block of GDAL calls; raise GdalError (GDAL's messages) if any of them failed.

    Inside, raise GdalError yourself where a result says so (None from Open/Create, a non-zero CPLErr).
    """
    recorder = _Recorder()
    gdal.PushErrorHandler(recorder)
    try:
        yield recorder
    except RuntimeError as exc:  # GDAL's exceptions are on (another plugin, a console script)
        exc.__traceback__ = None  # its frames (GDAL's wrappers) hold the dataset that failed: the GdalError's
        # context must not keep that open for as long as the error lives (see SpectralRaster._pixel_dataset)
        raise GdalError(' '.join(str(exc).split()) or 'unknown GDAL error') from None
    finally:
        gdal.PopErrorHandler()
    if recorder.failures:
        raise GdalError('; '.join(dict.fromkeys(recorder.failures)))


def close(dataset):
    """Close a dataset now, inside a checked() block: a failure of its last writes (a full disk) is then a GdalError
    there. Dropping the last reference instead closes it in the binding's destructor, which with GDAL's exceptions on
    raises where no one can catch it (Python prints "Exception ignored in: delete_Dataset"). GDAL 3.8 and newer
    close through Dataset.Close(); older bindings through the proxy's own destructor, which then owns nothing
    more."""
    if dataset is None:
        return
    closer = getattr(dataset, 'Close', None)
    if closer is not None:
        closer()
    else:
        type(dataset).__swig_destroy__(dataset)


def failure(recorder, default='unknown GDAL error'):
    """A GdalError with the messages recorded so far (for a result that says the call failed)."""
    return GdalError('; '.join(dict.fromkeys(recorder.failures)) or gdal.GetLastErrorMsg() or default)


def out_of_space(folder, message=''):
    """Whether a failed write into `folder` failed for lack of disk space."""
    text = str(message).lower()
    if 'no space left' in text or 'disk space' in text or 'disk full' in text or os.strerror(errno.ENOSPC).lower() \
            in text:
        return True
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


def disk_space_message(folder):
    return f'not enough disk space in {folder}; free some space or choose another output folder'
