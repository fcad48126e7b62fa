"""The `enmap-compress` command line and whole-archive runs (QGIS-free: argparse, the standard library and the core;
dask.distributed only for `archive --workers/--scheduler`, imported when asked for)."""
import os

# numpy's OpenBLAS threads spin on the idle cores after every matrix product, and the codec's products are small
# (rank-K rotations, 202 x 202 moments): one BLAS thread is as fast and leaves the cores to the tile workers
# (measured, 1000 x 1000 rdnet compress: 9.2-9.8 -> 7.2-7.8 s wall, 3.2-3.5 -> 1.1 s system time). The command line
# is a process of its own, and this runs before numpy loads; a value the user set wins. Inside QGIS nothing imports
# this package (no process-wide switch there); Dask's workers get the same from distributed's pre-spawn-environ.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
