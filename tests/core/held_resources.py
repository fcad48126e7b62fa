"""What an error's traceback still holds once a run has failed or been cancelled."""
import traceback

from osgeo import gdal


def datasets_held_by(error):
    """The GDAL datasets that the traceback of `error` (and of the errors it chains) still reaches from a frame's
    locals, or one attribute further (a reader's own handles). They should be none once the run is over: a held
    dataset keeps its file open for as long as the error lives (Windows cannot delete or replace it), and one freed
    after QgsApplication.exitQgis() crashes the interpreter at exit."""
    held = []
    while error is not None:
        for frame, _ in traceback.walk_tb(error.__traceback__):
            for value in frame.f_locals.values():
                reached = [value, *getattr(value, '__dict__', {}).values()]
                held += [item for item in reached if isinstance(item, gdal.Dataset)]
        error = error.__cause__ or error.__context__
    return held
