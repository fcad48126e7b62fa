"""How a model package's ONNX graphs see a tile.

Pixel models take spectra [n, 202]; spatial models take [1, 202, H, W] windows whose size is a multiple of their
spatial factor, with `tile_overlap` pixels of context around the tile so that tiles join without seams (the context
is decoded and thrown away). Both work on the HySpecNet [0, 1] scale and return latents as (channels, samples).
"""
import math
import threading
from typing import Protocol

import numpy as np

from .errors import FormatError
from .latent import LatentGeometry, zeroed_latent
from .synthesis import ExactSpectralMap, ExactSynthesis, FoldedSynthesis
from .tiling import Tile, rest_of


class Transform(Protocol):
    """A model's analysis and synthesis on one tile; `unit` is reflectance on [0, 1] of the model's bands, `valid`
    the window's valid pixels and `kept` the tile's slices inside its context window (tiling.kept_slices)."""

    kind: str
    channels: int
    tile_size: int

    def window(self, tile: Tile, width: int, height: int) -> Tile: ...

    def input_array(self, shape: tuple) -> np.ndarray: ...  # this thread's reused float32 array for encode's unit

    def encode(self, unit: np.ndarray, valid: np.ndarray, kept: tuple, done=None,
               overwrite: bool = False) -> np.ndarray: ...  # overwrite: `unit` may be changed

    def latent_geometry(self, valid: np.ndarray, kept: tuple) -> LatentGeometry: ...  # what the LatentCoder codes

    def decode(self, latent: np.ndarray, valid: np.ndarray, kept: tuple) -> np.ndarray: ...

    def exact(self): ...  # the model's exact synthesis (synthesis.py), or None: its error-bounded files use decode

    def decode_exact(self, latent_at, valid: np.ndarray, kept: tuple) -> np.ndarray: ...  # decode's, exactly

    # spatial transforms: decode_tile(latent, valid, kept), the tile's (bands, h, w) reconstruction, nodata included
    decodes_tiles: bool


class ThreadArrays:
    """Each thread's float32 arrays by name, reused from tile to tile: a fresh 53 MB array per 256 px tile took some
    13k page faults. An array lives until its thread asks for the same name again."""

    def __init__(self):
        self._local = threading.local()

    def get(self, name, shape):
        size = math.prod(shape)
        buffer = getattr(self._local, name, None)
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, np.float32)
            setattr(self._local, name, buffer)
        return buffer[:size].reshape(shape)


class PixelTransform:
    kind = 'pixel'
    decodes_tiles = False

    def __init__(self, runner, meta):
        self.runner = runner
        self.arrays = ThreadArrays()  # input_array's
        self.channels = meta.latent_channels
        self.bands = meta.input_bands
        self.tile_size = meta.effective_tile_size
        self._exact = None  # exact(): not read yet

    def window(self, tile, width, height):
        return tile

    def input_array(self, shape):
        """This thread's float32 array of `shape` for an encode's `unit` (reused: it lives until the next call)."""
        return self.arrays.get('input', shape)

    def encode(self, unit, valid, kept, done=None, overwrite=False):
        """unit: (202, h, w) window on [0, 1]; returns the latent (channels, valid pixels of the tile)."""
        x = unit[:, valid].T
        if not x.shape[0]:
            return np.zeros((self.channels, 0), np.float32)
        return self.runner.run('encoder', x, (self.channels,)).T

    def latent_geometry(self, valid, kept):
        """A latent sample per valid pixel of the tile, on the tile's own grid."""
        return LatentGeometry(self.channels, valid[kept])

    def decode(self, latent, valid, kept):
        """Returns the reconstruction (202, valid pixels of the tile) on [0, 1]."""
        if not latent.shape[1]:
            return np.zeros((self.bands, 0), np.float32)
        return self.runner.run('decoder', latent.T, (self.bands,)).T

    def exact(self):
        """This model's synthesis.ExactSpectralMap (None unless its decoder graph is y @ matrix + mean within the
        exact synthesis' limits: pca's), read once."""
        if self._exact is None:
            with open(self.runner.package.decoder_path, 'rb') as handle:
                self._exact = ExactSpectralMap.of_decoder(handle.read()) or False
        return self._exact or None

    def decode_exact(self, latent_at, valid, kept):
        """decode through the exact spectral map (files that name it): the same bits on every CPU. latent_at: a
        latent coder's dequantise with its symbols bound (the Transform protocol's decode_exact)."""
        exact = self.exact()
        if exact is None:
            raise FormatError('this file\'s tiles need the exact synthesis of a linear decoder, and this model\'s '
                              'decoder graph is not one')
        latent = latent_at()
        return exact.run(latent) if latent.shape[1] else np.zeros((self.bands, 0), np.float32)


# rdnet's analysis is block-local too (a per-pixel spectral map, then 8 x 8 blocks at stride 8): a window is
# encoded in ENCODE_PARTS row bands of blocks when each has at least ENCODE_PART_MIN_ROWS rows (bit for bit the
# values of one run on x86, tested; and a file does not depend on them: its decoder never sees the analysis)
ENCODE_PARTS, ENCODE_PART_MIN_ROWS = 4, 32
FILL_SHARE = 0.1  # of an encode in parts: the nodata fill and the padding, before the first part
# and its synthesis block by block: a tile's blocks are decoded in DECODE_PARTS runs when each has at least
# DECODE_PART_MIN_BLOCKS (and decodes_alone's count; the same values as one run, tested)
DECODE_PARTS, DECODE_PART_MIN_BLOCKS = 2, 128
SPARSE_BLOCKS = 0.8  # decode only the blocks with a valid pixel when they are at most this share of the tile


class SpatialTransform:
    kind = 'spatial'
    decodes_tiles = True

    def __init__(self, runner, meta):
        self.runner = runner
        self.factor = meta.spatial_factor
        self.dims = list(meta.latent_dims)
        self.channels = meta.latent_channels  # the product of latent_dims (checked by modelmeta)
        self.bands = meta.input_bands
        self.tile_size = meta.effective_tile_size
        self.overlap = meta.tile_overlap
        # rdnet's synthesis makes each block from its own latent cell only (a per-pixel spectral map after a
        # non-overlapping block transform): a block without a valid pixel need not be decoded
        self.separate_blocks = meta.informative.get('architecture') == 'RDNet' and not self.overlap
        self.arrays = ThreadArrays()  # each thread's encode input and decoding graph input
        self._folded = self._exact = None  # folded(), exact(): not read yet

    def window(self, tile, width, height):
        x0, y0 = max(0, tile.x - self.overlap), max(0, tile.y - self.overlap)
        x1 = min(width, tile.x + tile.width + self.overlap)
        y1 = min(height, tile.y + tile.height + self.overlap)
        return Tile(x0, y0, x1 - x0, y1 - y0)

    def input_array(self, shape):
        """This thread's float32 array of `shape` for an encode's `unit` (reused: it lives until the next call)."""
        return self.arrays.get('input', shape)

    def _trailing(self, graph, shape):
        """The shape the graph's output must have after its first axis for an input of `shape` (its last two axes the
        window's or the latent grid's rows and columns): (*latent_dims, rows, columns) of the encoder's latent grid,
        (bands, height, width) of the decoder's pixels."""
        height, width = shape[-2:]
        if graph == 'encoder':
            return (*self.dims, height // self.factor, width // self.factor)
        return (self.bands, height * self.factor, width * self.factor)

    def _padded(self, shape):
        return tuple(int(math.ceil(s / self.factor) * self.factor) for s in shape)

    def encode(self, unit, valid, kept, done=None, overwrite=False):
        """done(fraction): given, a block-local analysis runs in ENCODE_PARTS row bands of blocks and calls it after
        each (the same values as one run; the bar moves between them, at the cost of copying the bands).
        overwrite: `unit` may be changed (its nodata pixels filled in place: a tile-sized copy fewer)."""
        if not valid[kept].any():
            return np.zeros((self.channels, 0), np.float32)
        filled = unit
        if not valid.all():  # nodata gets a neutral spectrum, not an edge the model must code
            mean = valid_mean(unit, valid) if valid.any() else np.zeros(unit.shape[0], np.float32)
            filled = unit if overwrite and unit.flags.writeable else unit.copy()
            np.copyto(filled, mean[:, None, None], where=~valid)  # (a boolean scatter took 7x as long)
        height, width = self._padded(unit.shape[1:])
        if (height, width) != unit.shape[1:]:
            filled = np.pad(filled, ((0, 0), (0, height - unit.shape[1]), (0, width - unit.shape[2])), mode='edge')
        if done is None or not self.separate_blocks or height < ENCODE_PARTS * ENCODE_PART_MIN_ROWS:
            return self.runner.run('encoder', filled[None], self._trailing('encoder', filled.shape)).reshape(
                self.channels, -1)
        done(FILL_SHARE)
        rows = height // self.factor  # of blocks: each band's bounds are on the block grid
        bounds = [rows * i // ENCODE_PARTS * self.factor for i in range(ENCODE_PARTS + 1)]
        latent = self._in_bands('encoder', filled[None], -2, bounds, 1 / self.factor, rest_of(done, FILL_SHARE))
        return latent.reshape(self.channels, -1)

    def latent_geometry(self, valid, kept):
        """The latent grid of the whole padded window (none when the tile has no valid pixel), and its occupied
        cells: those whose factor x factor block of the padded window holds a valid pixel of the tile."""
        height, width = self._padded(valid.shape)
        rows, columns = height // self.factor, width // self.factor
        inside = np.zeros((height, width), bool)
        inside[kept[0], kept[1]] = valid[kept]
        occupied = inside.reshape(rows, self.factor, columns, self.factor).any(axis=(1, 3))
        return LatentGeometry(self.channels, np.full((rows, columns), bool(occupied.any())), occupied)

    def decode(self, latent, valid, kept):
        return self.valid_columns(self.decode_tile(latent, valid, kept), valid, kept)

    def valid_columns(self, blocks, valid, kept):
        """The (bands, valid pixels of the tile) values of a decode_tile's TileBlocks (or None: no valid pixel)."""
        if blocks is None:
            return np.zeros((self.bands, 0), np.float32)
        cube, tile_valid = blocks.cube(), valid[kept]
        if tile_valid.all():  # every pixel: the same values in the same order without a masked copy
            return cube.reshape(len(cube), -1)
        return _valid_columns(cube, tile_valid)

    def decode_tile(self, latent, valid, kept, done=None):
        """The reconstruction on [0, 1] of the tile's pixels as TileBlocks (None without a valid pixel): those
        outside `valid` too, or (separate blocks) only those of the blocks holding a valid pixel, when these are
        at most SPARSE_BLOCKS of the tile (nodata borders): the graph then runs on those blocks only.
        latent: the tile's latent (channels, grid cells), or a function of flat grid cells (None: all) and an
        `out` array that makes it at those cells only (a latent coder's dequantise with its symbols bound).
        done(fraction): given, separate blocks are decoded in DECODE_PARTS runs, calling it after each."""
        plan = self._blocks_to_decode(valid, kept)
        if plan is None:
            return None
        rows, columns, spans = plan
        latent_at = latent if callable(latent) else _cells_of(latent, self.channels * rows * columns)
        if spans is None:
            grid = _checked(latent_at(None, out=self._graph_input(rows * columns)), self.channels, rows * columns)
            cube = self._decode_parts(grid.reshape([1, *self.dims, rows, columns]), -2, done)
            return self._tile_of_grid(cube, valid, kept)
        return TileBlocks(self._decode_spans(latent_at, spans, columns, done), spans, self.factor, valid[kept].shape)

    def decode_tile_folded(self, live, rotation, valid, kept, done=None):
        """decode_tile through the folded synthesis (synthesis.py; files that name it): live(cells) gives the
        coded latent at its live components and coefficients (a latent coder's live_latent with its symbols
        bound), rotation the tile's latent_basis.TileRotation or None. The same blocks as decode_tile decodes;
        done(1.0) once they are."""
        folded = self.folded()
        if folded is None:
            raise FormatError('this file\'s tiles need the folded synthesis of an rdnet decoder, and this model\'s '
                              'decoder graph is not one')
        plan = self._blocks_to_decode(valid, kept)
        if plan is None:
            return None
        rows, columns, spans = plan
        cells = None if spans is None else _span_cells(spans, columns)
        components, coefficients, z = live(cells)
        matrix = folded.spectral_map(components, rotation)
        if cells is None:
            cube = folded.run(z, coefficients, matrix, rows, columns)
            blocks = self._tile_of_grid(cube, valid, kept)
        else:
            row = folded.run(z, coefficients, matrix, 1, cells.size)
            blocks = TileBlocks(row.reshape(len(row), self.factor, -1), spans, self.factor, valid[kept].shape)
        if done is not None:
            done(1.0)
        return blocks

    def folded(self):
        """This model's synthesis.FoldedSynthesis (None when its decoder graph is not rdnet's), read once."""
        if self._folded is None:
            self._folded = self._of_decoder(lambda data: FoldedSynthesis.of_decoder(
                data, self.runner.threads, tuple(self.runner.choice.providers))) or False
        return self._folded or None

    def exact(self):
        """This model's synthesis.ExactSynthesis (None when its decoder graph is not rdnet's or its weights exceed
        the exact synthesis' limits), read once."""
        if self._exact is None:
            self._exact = self._of_decoder(ExactSynthesis.of_decoder) or False
        return self._exact or None

    def _of_decoder(self, make):
        if not self.separate_blocks:
            return None
        with open(self.runner.package.decoder_path, 'rb') as handle:
            return make(handle.read())

    def decode_exact(self, latent_at, valid, kept):
        """decode through the exact synthesis (synthesis.ExactSynthesis; files that name it) on the whole padded
        grid: the same bits on every CPU. latent_at: as decode_tile's callable."""
        exact = self.exact()
        if exact is None:
            raise FormatError('this file\'s tiles need the exact synthesis of an rdnet decoder, and this model\'s '
                              'decoder graph is not one')
        height, width = self._padded(valid.shape)
        rows, columns = height // self.factor, width // self.factor
        if not self.latent_geometry(valid, kept).occupied.any():
            return self.valid_columns(None, valid, kept)
        latent = _checked(latent_at(None, out=self._graph_input(rows * columns)), self.channels, rows * columns)
        return self.valid_columns(self._tile_of_grid(exact.run(latent, rows, columns), valid, kept), valid, kept)

    def _blocks_to_decode(self, valid, kept):
        """(rows, columns, spans) of the tile's latent grid and the _block_spans of the blocks to decode alone, spans
        None for the whole grid (decodes_alone says which); None when no block holds a valid pixel."""
        height, width = self._padded(valid.shape)
        rows, columns = height // self.factor, width // self.factor
        occupied = self.latent_geometry(valid, kept).occupied
        if not occupied.any():
            return None
        spans = _block_spans(occupied) if self.separate_blocks else None
        if spans is not None and not self.decodes_alone(int(spans[:, 3].sum()), rows * columns):
            spans = None
        return rows, columns, spans

    @staticmethod
    def _tile_of_grid(cube, valid, kept):
        """TileBlocks of the tile's pixels in a graph output over the whole padded window."""
        return TileBlocks(cube[:, :valid.shape[0], :valid.shape[1]][:, kept[0], kept[1]])

    def decodes_alone(self, cells, grid_cells):
        """Whether the graph runs on `cells` blocks of a grid of `grid_cells` alone: when that saves work
        (SPARSE_BLOCKS) and gives the whole grid's values bit for bit. onnxruntime's CPU GEMM (MLAS) splits the
        202-term sums of rdnet's spectral map in two (128 + 74) when a thread's share of the output columns (64 a
        block) exceeds 64, not otherwise, and takes a vector path for one block: from max(2, 5/4 x threads) blocks
        every thread's share exceeds 64 in both runs (tests/core/test_tile_decoding.py checks it)."""
        return max(2, math.ceil(1.25 * self.runner.threads)) <= cells <= SPARSE_BLOCKS * grid_cells

    def _decode_parts(self, grid, axis, done):
        """The graph's output (bands, h, w) on a grid (1, *dims, rows, columns) of latent cells. With `done`, run on
        DECODE_PARTS bands of it along `axis` (-2: rows of blocks, -1: columns), calling done(fraction) after each,
        when its blocks are separate and each band has at least DECODE_PART_MIN_BLOCKS and decodes_alone's count
        of them (then each band's values are those of one run); else in one run."""
        length, across = grid.shape[axis], grid.shape[-1 if axis == -2 else -2]
        alone = max(DECODE_PART_MIN_BLOCKS, math.ceil(1.25 * self.runner.threads))
        if done is None or not self.separate_blocks or length // DECODE_PARTS * across < alone:
            return self.runner.run('decoder', grid, self._trailing('decoder', grid.shape))[0]
        bounds = [length * i // DECODE_PARTS for i in range(DECODE_PARTS + 1)]
        return self._in_bands('decoder', grid, axis, bounds, self.factor, done)[0]

    def _in_bands(self, graph, array, axis, bounds, scale, done):
        """The graph's output on `array` run on its bands between `bounds` along `axis` (each made contiguous) and
        put together along that axis, where a band's output spans its input's extent x `scale`; done(fraction)
        after each band. For block-local graphs only: then the values are those of one run (tested)."""
        out = None
        for number, (first, last) in enumerate(zip(bounds, bounds[1:]), 1):
            piece = np.ascontiguousarray(array[_along(axis, first, last)])
            part = self.runner.run(graph, piece, self._trailing(graph, piece.shape))
            if out is None:
                shape = list(part.shape)
                shape[axis] = round(array.shape[axis] * scale)
                out = np.empty(shape, part.dtype)
            out[_along(axis, round(first * scale), round(last * scale))] = part
            done(number / (len(bounds) - 1))
        return out

    def _decode_spans(self, latent_at, spans, columns, done=None):
        """The graph's output (bands, factor, factor x cells) on the cells of `spans` (_block_spans) of a grid
        `columns` wide, side by side as one row of blocks (latent_at: as decode_tile's; done: as _decode_parts'). The
        graph's arithmetic for a block does not depend on where the block is: the same values as a run on the
        whole grid (tested), without the work on the other blocks."""
        cells = _span_cells(spans, columns)
        row = _checked(latent_at(cells, out=self._graph_input(cells.size)), self.channels, cells.size)
        return self._decode_parts(row.reshape([1, *self.dims, 1, cells.size]), -1, done)

    def _graph_input(self, cells):
        """This thread's float32 (channels, cells) array for the graph's input, reused from tile to tile (the
        input lives only until the graph has run; a fresh 53 MB one per 256 px tile took 13k page faults)."""
        return self.arrays.get('graph', (self.channels, cells))


MEAN_BLOCK_PIXELS = 1024  # pixels per step of valid_mean: their (bands, 1024) float32 values stay in cache


def valid_mean(unit, valid):
    """The mean (bands,) float32 of a window's (bands, h, w) values at its valid pixels (at least one), summed in
    float64 a block of MEAN_BLOCK_PIXELS pixels at a time (a gather of all of them cost a tile-sized copy)."""
    flat, mask = unit.reshape(len(unit), -1), valid.reshape(-1)
    total = np.zeros(len(unit))
    for start in range(0, mask.size, MEAN_BLOCK_PIXELS):
        inside = mask[start:start + MEAN_BLOCK_PIXELS]
        if inside.any():
            total += np.compress(inside, flat[:, start:start + MEAN_BLOCK_PIXELS], axis=1).sum(axis=1,
                                                                                                dtype=np.float64)
    return (total / np.count_nonzero(mask)).astype(np.float32)


def _along(axis, first, last):
    """The index of first:last along a negative `axis`."""
    return (Ellipsis, slice(first, last)) + (slice(None),) * (-axis - 1)


def _cells_of(latent, size):
    """A whole latent (channels, cells) as decode_tile's function of cells: at some cells, its rows holding a
    nonzero value (most rows are 0; -0.0 counts) taken at them, the others 0."""
    if latent.size != size:
        raise FormatError('a tile latent does not match the model geometry')

    def at(cells, out=None):
        if cells is None:
            return latent
        live = np.flatnonzero(latent.view(np.int32).any(axis=1))
        out = zeroed_latent((latent.shape[0], cells.size), out)
        out[live] = np.take(latent[live], cells, axis=1)
        return out
    return at


def _checked(latent, channels, cells):
    if latent.shape != (channels, cells):
        raise FormatError('a tile latent does not match the model geometry')
    return latent


class TileBlocks:
    """A decoded tile: `values` (bands, ...) to convert in place (every operation on them is per sample), and
    where they go. spans None: values is the (bands, h, w) tile. Else values is a row of blocks (bands, factor,
    factor x cells) holding the cells of `spans` (_block_spans) of a tile of `shape` (h, w); its other pixels
    have no values."""

    def __init__(self, values, spans=None, factor=None, shape=None):
        self.values, self.spans, self.factor = values, spans, factor
        self.rounded = False  # the values already rounded for the output type (TileCoder.decode's output)
        self.shape = values.shape[1:] if spans is None else shape

    def put(self, values, target):
        """Write `values` (rows of self.values, converted) into target (those rows, h, w) at their pixels, cast to
        its type; target's other pixels stay as they are."""
        if self.spans is None:
            np.copyto(target, values, casting='unsafe')
            return
        f, (height, width) = self.factor, self.shape
        for r, c0, at, n in self.spans:
            y, x = r * f, c0 * f
            h, w = min(f, height - y), min(n * f, width - x)
            np.copyto(target[:, y:y + h, x:x + w], values[:, :h, at * f:at * f + w], casting='unsafe')

    def cube(self):
        """The values as a (bands, h, w) tile (0 at the pixels without values)."""
        if self.spans is None:
            return self.values
        cube = np.zeros((len(self.values), *self.shape), self.values.dtype)
        self.put(self.values, cube)
        return cube


def _block_spans(occupied):
    """(block row, first cell, first cell in the row of blocks, cells) of each run of the block grid (rows,
    columns) from the first to the last occupied cell of a block row: (k, 4) int64, raster order."""
    rows = np.flatnonzero(occupied.any(axis=1))
    first = occupied[rows].argmax(axis=1)
    count = occupied.shape[1] - occupied[rows, ::-1].argmax(axis=1) - first
    return np.stack([rows, first, np.cumsum(count) - count, count], axis=1)


def _span_cells(spans, columns):
    """The flat grid cells of `spans` (_block_spans) of a grid `columns` wide, in span order."""
    return np.concatenate([np.arange(n) + r * columns + c0 for r, c0, _at, n in spans])


def _valid_columns(cube, valid):
    """cube[:, valid] of a (bands, h, w) cube: the same array, several times faster than boolean indexing."""
    return np.compress(valid.reshape(-1), cube.reshape(len(cube), -1), axis=1)


TRANSFORMS = {'pixel': PixelTransform, 'spatial': SpatialTransform}  # by modelmeta.KINDS


def make_transform(runner, meta):
    """The Transform of a package's metadata (modelmeta.ModelMetadata; its kind is one of TRANSFORMS)."""
    return TRANSFORMS[meta.kind](runner, meta)
