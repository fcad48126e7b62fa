"""The Zarr codec's tests need the archive extra (zarr, xarray, dask, numcodecs): without it they are not collected."""
import importlib.util

collect_ignore = [] if all(importlib.util.find_spec(m) for m in ('zarr', 'xarray', 'dask', 'numcodecs')) \
    else ['test_zarr_codec.py']
