"""The `enmap-compress` command line and whole-archive runs (QGIS-free: argparse, the standard library and the core;
dask.distributed only for `archive --workers/--scheduler`, imported when asked for)."""
