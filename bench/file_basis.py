"""A per-file spectral basis for rdnet (#14): prototype and measurement on the training side.

usage: python -m bench.file_basis [--datasets tiles,mosaics,synthetic] [--levels 1-10] [--variants ...]

rdnet's analysis is y = A (u - m) (the learned spectral matrix, 202 components), then its learned 8 x 8 block
transform of every component, coded by the context latent coder with the learned per-row prior. A per-file basis
rotates the learned components: z = T^-1 y with T = [R_K, Q], R_K the K leading eigenvectors of the file's own
covariance of y (in the learned coordinates, so that R is close to the identity on data like the training tiles
and cheap to send), Q the remaining learned axes orthonormalised against R_K (nothing to send). The block
transform, the prior (component k of z uses component k's rows, overridden per row where the encoder finds that
cheaper) and the coder are rdnet's own, run through the real TileCoder (codec.encode_tile / decode_tile).

The basis R_K is quantised to a step of 2^-b and coded as integer rows with entropy.encode_channels; its bytes are
counted in the rate. Everything else of the file (header, index, framing) is the real rdnet file's overhead on the
same input, measured once per raster, and reported apart (engineer H is compacting the header).

Datasets, training side only (no held-out tile is read): `tiles` = the nine training tiles, each its own file;
`mosaics` = three 96 x 32 mosaics of training tiles (the held-out mosaic's shape); `mosaic9` = the nine training
tiles as one 96 x 96 mosaic; `synthetic` = tools.synthetic's scene (256 x 256, seed 0); `cropN` its centre N x N
(where a basis stops paying on unlike data). `heldout` (each tile its
own file) and `heldout-mosaic` (96 x 32) are for the one final check of a variant chosen on the others.

Variants: `onnx` (rdnet as it is, always measured: the reference), `klt-K[-bB][-u]` (the file's K leading axes,
uniform 2^-B quantisation), `sub-K[-bB]` (a K x K rotation of the K leading learned components only),
`ada-T-C` (the axes whose variance exceeds T step^2, each quantised to C step / its standard deviation),
`auto-T-C` (ada, used only where a per-row Laplace estimate says it saves bits, else rdnet's own plus a flag byte).
Measured conclusion: see docs/benchmarks.md, "Per-file spectral basis".
"""
import argparse
import os
import shutil
import sys
from dataclasses import dataclass

import numpy as np

from bench.rdnet_vs_pca import at, curve
from bench.reporting import scratch_dir
from bench.scenes import Pool, load_scene, synthetic_scene, write_mosaic
from enmap_compress.plugin.core import codec, entropy
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.tiling import Tile, kept_slices
from training.shared_data import potsdam_tiles

RATES = (0.10, 0.15, 0.20, 0.30, 0.40, 0.60)
BLOCK = 8


def onnx_constants(path):
    """The Constant tensors and initializers of a graph, in node order."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    out = [numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == 'Constant']
    return out, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@dataclass
class LearnedSpectral:
    """rdnet's weights as numpy: y = matrix @ u + bias; block rows: the 64 block filters (flattened 8 x 8)."""

    matrix: np.ndarray  # (202, 202)
    bias: np.ndarray
    block: np.ndarray  # (64, 64) analysis
    synthesis: np.ndarray  # (202, 202)
    synthesis_bias: np.ndarray
    synthesis_block: np.ndarray  # (64, 64)

    @classmethod
    def of(cls, folder):
        enc, enc_init = onnx_constants(os.path.join(folder, 'encoder.onnx'))
        dec, dec_init = onnx_constants(os.path.join(folder, 'decoder.onnx'))
        block = next(v for k, v in enc_init.items() if k.endswith('shared'))
        synthesis_block = next(v for k, v in dec_init.items() if k.endswith('shared'))
        return cls(enc[0][:, :, 0, 0].astype(np.float64), enc[1].astype(np.float64),
                   block.reshape(64, 64).astype(np.float64), dec[0][:, :, 0, 0].astype(np.float64),
                   dec[1].astype(np.float64), synthesis_block.reshape(64, 64).astype(np.float64))


def blocks_forward(y, filters):
    """(K, H, W) -> latent (K * 64, H / 8, W / 8), channel k * 64 + j, like rdnet's grouped convolution."""
    k, height, width = y.shape
    cells = y.reshape(k, height // BLOCK, BLOCK, width // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
    coefficients = cells.reshape(k, height // BLOCK, width // BLOCK, 64) @ filters.T
    return coefficients.transpose(0, 3, 1, 2).reshape(k * 64, height // BLOCK, width // BLOCK)


def blocks_inverse(latent, filters, k):
    """The transposed convolution of rdnet's decoder: latent (K * 64, h, w) -> (K, 8h, 8w)."""
    _, rows, columns = latent.shape
    coefficients = latent.reshape(k, 64, rows, columns).transpose(0, 2, 3, 1) @ filters
    cells = coefficients.reshape(k, rows, columns, BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
    return cells.reshape(k, rows * BLOCK, columns * BLOCK)


def complete_basis(leading):
    """T = [R_K, Q] (n, n): R_K (n, K) orthonormal, then the learned axes K..n-1 made orthogonal to it and to each
    other in order (Gram-Schmidt by QR), signs fixed so that T is the identity when R_K is."""
    n, k = leading.shape
    rest = np.eye(n)[:, k:] - leading @ leading[k:].T
    q, r = np.linalg.qr(rest)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    return np.concatenate([leading, q], axis=1)


def orthonormal(columns):
    """Columns made orthonormal in order, keeping each one's sign."""
    q, r = np.linalg.qr(columns)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def file_rotation(y, k, centred=True):
    """(202, K) leading eigenvectors of the covariance (or second moment) of the learned components y (202, N),
    each with its largest entry positive."""
    x = y - y.mean(axis=1, keepdims=True) if centred else y
    values, vectors = np.linalg.eigh(x @ x.T / max(x.shape[1], 1))
    vectors = vectors[:, np.argsort(values)[::-1][:k]]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(k)])
    return vectors * signs


def file_klt(y):
    """(eigenvalues per pixel, eigenvectors) of the centred covariance of y (202, N), leading first, each vector's
    largest entry positive."""
    x = y - y.mean(axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(x @ x.T / max(x.shape[1], 1))
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(len(values))])
    return values, vectors * signs


def adaptive_rotation(y, step, threshold, precision):
    """(decoded basis, bytes): the file's axes whose variance exceeds threshold * step^2, each quantised to the
    power of two nearest precision * step / sqrt(variance) (an axis error e leaks variance * e^2 into the others;
    it need not be finer than the step can see), with a byte per axis for its exponent."""
    values, vectors = file_klt(y)
    k = int(np.count_nonzero(values > threshold * step * step))
    if not k:
        return np.zeros((y.shape[0], 0)), 2
    exponents = np.clip(np.rint(np.log2(precision * step / np.sqrt(values[:k]))), -14, -2)
    integers = np.rint(vectors[:, :k] / 2.0 ** exponents).astype(np.int32)
    data = entropy.encode_channels(integers.T.copy())
    return orthonormal(integers * 2.0 ** exponents), len(data) + 2 + k


def quantised_rotation(rotation, bits):
    """(basis as decoded: orthonormalised R_K from its integers, bytes of the coded integers)."""
    if bits is None:
        return rotation, 0
    integers = np.rint(rotation * 2.0 ** bits).astype(np.int32)
    data = entropy.encode_channels(integers.T.copy())
    return orthonormal(integers.astype(np.float64) / 2.0 ** bits), len(data) + 2  # + K and b


class BasisTransform:
    """rdnet's spatial transform with the spectral stage as numpy and a per-file rotation T of the learned
    components (T None: rdnet's own, to check this path against the ONNX encoder)."""

    def __init__(self, real, learned, rotation=None):
        self.real, self.learned = real, learned
        self.kind, self.channels, self.tile_size = real.kind, real.channels, real.tile_size
        self.components = learned.matrix.shape[0]
        self.rotation = None if rotation is None else complete_basis(rotation)

    def window(self, tile, width, height):
        return self.real.window(tile, width, height)

    def latent_geometry(self, valid, kept):
        return self.real.latent_geometry(valid, kept)

    def learned_components(self, unit, valid):
        """y (202, H, W) of the padded window, as the real encoder fills nodata and pads."""
        filled = unit.copy()
        filled[:, ~valid] = unit[:, valid].mean(axis=1)[:, None]
        height, width = self.real._padded(unit.shape[1:])
        padded = np.pad(filled, ((0, 0), (0, height - unit.shape[1]), (0, width - unit.shape[2])), mode='edge')
        flat = self.learned.matrix @ padded.reshape(padded.shape[0], -1).astype(np.float64)
        return (flat + self.learned.bias[:, None]).reshape(-1, height, width)

    def encode(self, unit, valid, kept):
        if not valid[kept].any():
            return np.zeros((self.channels, 0), np.float32)
        y = self.learned_components(unit, valid)
        if self.rotation is not None:
            y = np.tensordot(self.rotation.T, y, axes=1)  # T is orthonormal: T^-1 = T^T
        return blocks_forward(y, self.learned.block).reshape(self.channels, -1).astype(np.float32)

    def decode(self, latent, valid, kept):
        height, width = self.real._padded(valid.shape)
        z = blocks_inverse(latent.reshape(self.channels, height // BLOCK, width // BLOCK).astype(np.float64),
                           self.learned.synthesis_block, self.components)
        if self.rotation is not None:
            z = np.tensordot(self.rotation, z, axes=1)
        cube = np.tensordot(self.learned.synthesis, z, axes=1) + self.learned.synthesis_bias[:, None, None]
        cube = cube.astype(np.float32)
        return cube[:, :valid.shape[0], :valid.shape[1]][:, kept[0], kept[1]][:, valid[kept]]


def read_whole(path):
    with open_spectral(path) as raster:
        cube = raster.read_canonical(0, 0, raster.width, raster.height)
        return cube, raster.nodata, raster.canonical_dead_bands, raster


class Case:
    """One raster coded as one tile by rdnet's real TileCoder at each level; the transform is swapped."""

    def __init__(self, path, package, runner, scratch):
        self.path, self.package, self.runner = path, package, runner
        self.scene = load_scene(path)
        self.cube, self.nodata, self.dead, _ = read_whole(path)
        height, width = self.cube.shape[1:]
        if max(height, width) > package.meta.effective_tile_size:
            raise SystemExit(f'{path}: larger than one rdnet tile')
        self.tile = Tile(0, 0, width, height)
        self.kept = kept_slices(self.tile, self.tile)
        self.overhead = self._file_overhead(scratch)

    def coder(self, level):
        with open_spectral(self.path) as raster:
            return codec._encoder(self.package, level, self.runner, raster, None,
                                  self.package.meta.effective_tile_size, False)

    def payload(self, coder):
        return codec.encode_tile(coder, self.cube, self.nodata, self.dead, self.kept)[0]

    def _file_overhead(self, scratch):
        """Bytes of the real rdnet file (q5) that are not the tile's payload: header, index, framing."""
        out = os.path.join(scratch, 'overhead.ehc')
        size = codec.compress(self.path, out, 'rdnet', 5, 'cpu', threads=1).file_bytes
        return size - len(self.payload(self.coder(5)))

    def run(self, level, transform_of):
        """(payload bytes, basis bytes, reconstruction canonical (224, H, W) DN) with the coder's transform
        replaced by transform_of(coder, unit) -> (transform, basis bytes)."""
        coder = self.coder(level)
        unit = coder.radiometry.to_unit(self.cube[coder.coded].astype(np.float32))
        coder.transform, basis_bytes = transform_of(coder, unit, self.scene.valid)
        payload = self.payload(coder)
        restored = codec.decode_tile(coder, payload, self.tile, self.tile, np.int16, self.nodata, self.dead)
        return len(payload), basis_bytes, restored


def learned_y(coder, learned, unit, valid):
    """The learned components at the valid pixels (202, N)."""
    y = BasisTransform(coder.transform, learned).learned_components(unit, valid)
    return y[:, :valid.shape[0], :valid.shape[1]][:, valid]


def variant(name, learned):
    """transform_of for a named variant: 'onnx' (the real transform), 'numpy' (rdnet in numpy), 'klt-K[-bB][-u]'
    (the file's own K leading axes, basis quantised to 2^-B when given, uncentred covariance with -u), 'sub-K...'
    (the same inside the K leading learned components only: a K x K rotation)."""
    if name == 'onnx':
        return lambda coder, unit, valid: (coder.transform, 0)
    if name == 'numpy':
        return lambda coder, unit, valid: (BasisTransform(coder.transform, learned), 0)
    if name.startswith(('ada-', 'auto-')):
        threshold, precision = (float(v) for v in name.split('-')[1:3])

        def adaptive(coder, unit, valid):
            rotation, size = adaptive_rotation(learned_y(coder, learned, unit, valid), coder.step, threshold,
                                               precision)
            rotated = BasisTransform(coder.transform, learned, rotation)
            if name.startswith('ada-'):
                return rotated, size
            plain = BasisTransform(coder.transform, learned)
            whole = (slice(None), slice(None))  # a Case is one tile
            cost = [estimated_bits(coder, t.encode(unit, valid, whole)) for t in (plain, rotated)]
            if cost[1] + 8 * size < cost[0]:
                return rotated, size + 1  # + the flag byte
            return plain, 1
        return adaptive
    parts = name.split('-')
    k = int(parts[1])
    bits = next((int(p[1:]) for p in parts[2:] if p.startswith('b')), None)
    centred = 'u' not in parts[2:]
    within = parts[0] == 'sub'  # rotate only inside the K leading learned components (K x K, not K x 202)

    def transform_of(coder, unit, valid):
        y = learned_y(coder, learned, unit, valid)
        if within:
            rotation = np.zeros((y.shape[0], k))
            rotation[:k], size = quantised_rotation(file_rotation(y[:k], k, centred), bits)
        else:
            rotation, size = quantised_rotation(file_rotation(y, k, centred), bits)
        return BasisTransform(coder.transform, learned, rotation), size
    return transform_of


def estimated_bits(coder, latent):
    """Bits of a latent (channels, cells) under one fitted Laplace scale per row at the coder's step and dead zone:
    the encoder's cheap estimate for choosing a rotation (the context coder's own tables do better on both)."""
    from enmap_compress.plugin.core.latent import laplace_bits

    inner = coder.latent_coder
    size = np.abs(inner._quantise(latent * np.float32(1.0 / inner.step))).astype(np.float64)
    nonzeros = np.count_nonzero(size, axis=1).astype(np.float64)
    total = size.sum(axis=1)
    beta = np.maximum(total / size.shape[1], 2.0 ** -30)
    return float(laplace_bits(size.shape[1] - nonzeros, nonzeros, total - nonzeros, beta, inner.deadzone).sum())


def measure(cases, name, learned, levels):
    """Rows {level, bpppb, psnr, sa_deg, payload, basis, overhead} pooled over the cases."""
    transform_of = variant(name, learned)
    rows = []
    for level in levels:
        pool, payload, basis, overhead = Pool(), 0, 0, 0
        for case in cases:
            size, side, restored = case.run(level, transform_of)
            pool.add(size + side + case.overhead, case.scene, restored, case.scene.keep)
            payload, basis, overhead = payload + size, basis + side, overhead + case.overhead
        rows.append(dict(pool.result(), level=level, payload=payload, basis=basis, overhead=overhead))
    return rows


def datasets(names, scratch):
    train = potsdam_tiles(held_out=False)
    out = {}
    for name in names:
        if name == 'tiles':
            out[name] = train
        elif name == 'mosaics':
            out[name] = [write_mosaic(train[i::3], os.path.join(scratch, f'mosaic{i}.tif')) for i in range(3)]
        elif name == 'mosaic9':
            rows = [write_mosaic(train[3 * i:3 * i + 3], os.path.join(scratch, f'row{i}.tif')) for i in range(3)]
            out[name] = [stack_rows(rows, os.path.join(scratch, 'mosaic9.tif'))]
        elif name == 'synthetic':
            out[name] = [synthetic_scene(256, 256)]
        elif name.startswith('crop'):  # cropN: the synthetic scene's centre N x N (unlike data, small files)
            size = int(name[4:])
            out[name] = [crop(synthetic_scene(256, 256), (256 - size) // 2, size, os.path.join(scratch, name + '.tif'))]
        elif name == 'heldout':  # the final check only: never for a choice
            out[name] = potsdam_tiles(held_out=True)
        elif name == 'heldout-mosaic':
            out[name] = [write_mosaic(potsdam_tiles(held_out=True), os.path.join(scratch, 'heldout.tif'))]
        else:
            raise SystemExit(f'unknown dataset {name}')
    return out


def crop(path, offset, size, out_path):
    from osgeo import gdal

    gdal.Translate(out_path, path, srcWin=[offset, offset, size, size])
    return out_path


def stack_rows(paths, out_path):
    """Same-width rasters one above the other (the first one's metadata)."""
    from osgeo import gdal

    sources = [gdal.Open(p) for p in paths]
    data = np.concatenate([s.ReadAsArray() for s in sources], axis=1)
    gdal.Translate(out_path, sources[0], srcWin=[0, 0, data.shape[2], data.shape[1]],
                   creationOptions=['INTERLEAVE=BAND'])
    out = gdal.Open(out_path, gdal.GA_Update)
    for i in range(out.RasterCount):
        out.GetRasterBand(i + 1).WriteArray(data[i])
    out = None
    return out_path


def report(dataset, results, rates):
    base = curve(results['onnx'])
    print(f'\n{dataset}: PSNR dB at equal rate (header/index overhead per file included as measured; gain over rdnet)')
    print('| variant | ' + ' | '.join(f'{r:.2f}' for r in rates) + ' | basis B / file (q1..q10) |')
    print('|---|' + '---|' * (len(rates) + 1))
    for name, rows in results.items():
        points = curve(rows)
        cells = []
        for rate in rates:
            psnr, _sa, inside = at(points, rate)
            ref = at(base, rate)[0]
            cells.append(f'{psnr:.2f} ({psnr - ref:+.2f}){"" if inside else " *"}')
        basis = sorted({r['basis'] for r in rows})
        print(f'| {name} | ' + ' | '.join(cells) + f' | {basis[0]}..{basis[-1]} |')
    for name, rows in results.items():
        print(f'{dataset} {name}: ' + ', '.join(f"q{r['level']} {r['bpppb']:.4f} {r['psnr']:.2f} dB "
                                              f"(payload {r['payload']} basis {r['basis']} overhead {r['overhead']})"
                                              for r in rows), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', default='tiles,mosaics,synthetic')
    parser.add_argument('--levels', default='1-10')
    parser.add_argument('--variants', default='onnx,numpy,klt-202,klt-16,klt-16-b7')
    parser.add_argument('--rates', default=','.join(f'{r:g}' for r in RATES))
    args = parser.parse_args(argv)
    lo, _, hi = args.levels.partition('-')
    levels = tuple(range(int(lo), int(hi or lo) + 1)) if '-' in args.levels else \
        tuple(int(v) for v in args.levels.split(','))
    rates = tuple(float(r) for r in args.rates.split(','))
    package = find_model('rdnet')
    learned = LearnedSpectral.of(package.folder)
    runner = OnnxRunner(package, 'cpu', 1)
    scratch = scratch_dir('file_basis_')
    try:
        for dataset, paths in datasets(args.datasets.split(','), scratch).items():
            cases = [Case(p, package, runner, scratch) for p in paths]
            names = ['onnx'] + [v for v in args.variants.split(',') if v != 'onnx']  # the reference row first
            results = {name: measure(cases, name, learned, levels) for name in names}
            report(dataset, results, rates)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
