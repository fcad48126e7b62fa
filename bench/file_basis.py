"""A per-tile spectral basis for rdnet (#14), through the real codec: rdnet's context coder with and without it.

usage: python -m bench.file_basis [--datasets tiles,mosaics,synthetic] [--levels 1-10] [--variants basis,always]

Every file is written by codec.compress and read back by codec.decompress; rates are its bytes on disk. The
variants are codec info `latent_coder` values: `context` (context-v1, the files 0.4.0 writes: the reference, always
measured), `basis` (context-v2, the default for lossy rdnet files: a tile is rotated when the encoder's
estimate says the basis pays, plugin/core/latent_basis.py) and `always` (the same stream with every fitted basis
sent: what the choice saves).

Datasets, training side only (no held-out tile is read): `tiles` = the nine training tiles, each its own file;
`mosaics` = three 96 x 32 mosaics of training tiles (the held-out mosaic's shape); `mosaic9` = the nine training
tiles as one 96 x 96 mosaic; `synthetic` = tools.synthetic's scene (256 x 256, seed 0); `cropN` its centre N x N.
`heldout` (each tile its own file) and `heldout-mosaic` (96 x 32) are for the one final check only.

The prototype that chose the design (a rotation of y before rdnet's block transform, with the exploratory own-KLT,
sub-K and uniform-grid variants) is in git history before the codec path (bench/file_basis.py at 626c692); its
measurements are in docs/benchmarks.md, "Per-file spectral basis".
"""
import argparse
import contextlib
import os
import shutil
import sys

import numpy as np

from bench.rdnet_vs_pca import at, curve
from bench.reporting import scratch_dir
from bench.scenes import Pool, load_scene, synthetic_scene, write_mosaic
from enmap_compress.plugin.core import codec, latent_basis
from enmap_compress.plugin.core.codecheader import LATENT_BASIS, LATENT_CONTEXT
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.tiling import Tile, kept_slices
from training.shared_data import potsdam_tiles

RATES = (0.10, 0.15, 0.20, 0.30, 0.40, 0.60)
VARIANTS = {'context': LATENT_CONTEXT, 'basis': LATENT_BASIS, 'always': LATENT_BASIS}


@contextlib.contextmanager
def encoder_choice(variant):
    """The basis coder's choice for a variant ('always': every fitted basis is sent)."""
    saved = latent_basis.BasisContextCoder.always
    latent_basis.BasisContextCoder.always = variant == 'always'
    try:
        yield
    finally:
        latent_basis.BasisContextCoder.always = saved


def tile_rotations(path):
    """Whether each tile of an .ehc file carries a basis (all False for files of another latent coder)."""
    from enmap_compress.plugin.core.tilepayload import decode_mask
    from enmap_compress.plugin.core.validation import open_checked

    reader, checked = open_checked(path)
    with reader:
        coder, _runner = codec.decoder_for(checked.codec, 'cpu', 1, checked.raster, reader.version >= (3, 0))
        out = []
        for index in range(reader.chunk_count):
            tile = Tile.from_dict(reader.chunk_meta(index))
            sections = coder.unpack(reader.read_chunk(index))
            window = coder.transform.window(tile, checked.raster['width'], checked.raster['height'])
            kept = kept_slices(tile, window)
            valid = np.zeros((window.height, window.width), bool)
            valid[kept] = decode_mask(sections.mask, tile.height, tile.width)
            symbols = coder.latent_coder.decode(sections.latent, coder.transform.latent_geometry(valid, kept))
            out.append(getattr(symbols, 'rotation', None) is not None)
        return out


def read_canonical(path):
    with open_spectral(path) as raster:
        return raster.read_canonical(0, 0, raster.width, raster.height)


def measure(paths, variant, levels, scratch):
    """Rows {level, bpppb, psnr, sa_deg, rotated, tiles} pooled over the files of `paths` at each level."""
    scenes = [load_scene(p) for p in paths]
    out = os.path.join(scratch, 'file.ehc')
    rows = []
    with encoder_choice(variant):
        for level in levels:
            pool, rotated, tiles = Pool(), 0, 0
            for path, scene in zip(paths, scenes):
                result = codec.compress(path, out, 'rdnet', level, 'cpu', threads=1, latent_coder=VARIANTS[variant])
                codec.decompress(out, out + '.tif', 'cpu', threads=1)
                pool.add(result.file_bytes, scene, read_canonical(out + '.tif'), scene.keep)
                rotations = tile_rotations(out)
                rotated, tiles = rotated + sum(rotations), tiles + len(rotations)
            rows.append(dict(pool.result(), level=level, rotated=rotated, tiles=tiles))
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
    base = curve(results['context'])
    print(f'\n{dataset}: PSNR dB at equal rate (real files; gain over context-v1)')
    print('| variant | ' + ' | '.join(f'{r:.2f}' for r in rates) + ' | tiles rotated (q1..q10) |')
    print('|---|' + '---|' * (len(rates) + 1))
    for name, rows in results.items():
        points = curve(rows)
        cells = []
        for rate in rates:
            psnr, _sa, inside = at(points, rate)
            cells.append(f'{psnr:.2f} ({psnr - at(base, rate)[0]:+.2f}){"" if inside else " *"}')
        rotated = '/'.join(str(r['rotated']) for r in rows)
        print(f'| {name} | ' + ' | '.join(cells) + f' | {rotated} of {rows[0]["tiles"]} |')
    for name, rows in results.items():
        print(f'{dataset} {name}: ' + ', '.join(f"q{r['level']} {r['bpppb']:.4f} {r['psnr']:.2f} dB "
                                              f"SA {r['sa_deg']:.3f}" for r in rows), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', default='tiles,mosaics,synthetic')
    parser.add_argument('--levels', default='1-10')
    parser.add_argument('--variants', default='basis,always')
    parser.add_argument('--rates', default=','.join(f'{r:g}' for r in RATES))
    args = parser.parse_args(argv)
    lo, _, hi = args.levels.partition('-')
    levels = tuple(range(int(lo), int(hi or lo) + 1)) if '-' in args.levels else \
        tuple(int(v) for v in args.levels.split(','))
    rates = tuple(float(r) for r in args.rates.split(','))
    names = ['context'] + [v for v in args.variants.split(',') if v != 'context']  # the reference first
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f'unknown variants {sorted(unknown)} (known: {", ".join(VARIANTS)})')
    scratch = scratch_dir('file_basis_')
    try:
        for dataset, paths in datasets(args.datasets.split(','), scratch).items():
            results = {name: measure(paths, name, levels, scratch) for name in names}
            report(dataset, results, rates)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
