"""What rdnet's context latent coder saves over the learned-prior coder, on the latent bytes alone.

usage: python -m bench.latent_context [--datasets train,train-mosaic] [--levels 1-10] [--fit] [--rdoq]
Datasets: `train` = the nine training tiles, each its own tile; `train-mosaic` = the nine side by side in a 3 x 3
mosaic (96 x 96 px, one tile); `held-out` / `held-out-mosaic` the same for the three held-out tiles (report only,
never for a choice); `synthetic` = tools.synthetic's 256 x 256 scene (seed 0). Both coders get the same latent
(the bundled rdnet's ONNX encoder through the codec's transform) and are round-tripped; the table gives the latent
bytes of each and the saving, the context coder without RDOQ (the same symbols: the entropy coding's own saving)
and with it (fewer bytes for a little more error: see --rdoq for its gain at equal rate). `--fit` prints the
context coder's default deltas fitted on the training tiles (all quality levels pooled): the values of
plugin/core/context_coder.DEFAULT_DELTAS. `--rdoq` measures the encoder's
rate-distortion optimised quantisation instead: the training tiles (each its own file) and the training mosaic through
the real codec with it off and on, PSNR at equal real rate.
"""
import argparse
import os
import sys

import numpy as np

from bench.rdnet_vs_anchors import RATES, _levels
from bench.rdnet_vs_pca import at, curve
from bench.scenes import write_mosaic
from enmap_compress.plugin.core import context_coder
from enmap_compress.plugin.core.enmap import open_spectral
from enmap_compress.plugin.core.latent import PriorLatentCoder
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.transforms import make_transform
from training.measure import measure_package
from training.shared_data import PROJECT_ROOT, potsdam_tiles


def cubes_of(name):
    """[(unit cube (202, H, W), valid (H, W))] of a dataset, in the HySpecNet [0, 1] view."""
    if name == 'synthetic':
        from bench.scenes import synthetic_scene

        paths = [synthetic_scene(256, 256)]
    else:
        paths = potsdam_tiles(held_out=name.startswith('held-out'))
    scenes = []
    for path in paths:
        with open_spectral(path) as raster:
            cube = np.clip(raster.hyspecnet_view(0, 0, raster.width, raster.height), 0, 1).astype(np.float32)
            live = ~raster.canonical_dead_bands
            data = raster.read_canonical(0, 0, raster.width, raster.height)[live]
            valid = ~np.all(data == raster.nodata, axis=0) if raster.nodata is not None else np.ones(cube.shape[1:],
                                                                                                     bool)
        scenes.append((cube, valid))
    if name.endswith('mosaic'):
        columns = 3
        rows = [scenes[i:i + columns] for i in range(0, len(scenes), columns)]
        cube = np.concatenate([np.concatenate([c for c, _v in row], axis=2) for row in rows], axis=1)
        valid = np.concatenate([np.concatenate([v for _c, v in row], axis=1) for row in rows], axis=0)
        scenes = [(cube, valid)]
    return scenes


def latents(name):
    """[(latent (channels, cells), geometry)] of a dataset through the bundled rdnet's encoder."""
    package = find_model(os.path.join(PROJECT_ROOT, 'models', 'rdnet'))
    transform = make_transform(OnnxRunner(package, 'cpu', 1), package.meta)
    out = []
    for cube, valid in cubes_of(name):
        kept = (slice(0, valid.shape[0]), slice(0, valid.shape[1]))
        out.append((transform.encode(cube, valid, kept), transform.latent_geometry(valid, kept)))
    return package.meta, out


def measure(meta, items, levels):
    """Rows (level, prior bytes, context bytes without RDOQ (the same symbols), with RDOQ), every stream decoded
    back and compared."""
    rows = []
    for level in levels:
        prior = PriorLatentCoder(meta.level(level), meta.entropy_model)
        sizes = [0, 0, 0]
        for latent, geometry in items:
            sizes[0] += len(prior.encode(latent, geometry)[1])
            for column, rdoq in ((1, False), (2, True)):
                context = context_coder.ContextLatentCoder(meta.level(level), meta.entropy_model)
                context.rdoq = rdoq
                symbols, data = context.encode(latent, geometry)
                if not np.array_equal(context.decode(data, geometry), symbols):
                    raise SystemExit(f'context coder round trip failed at quality {level}')
                sizes[column] += len(data)
        rows.append((level, *sizes))
    return rows


def fit_defaults(meta, items, levels):
    """DEFAULT_DELTAS fitted to the items: per (Haar level, class), the delta of least pooled estimated bits."""
    total = 0.0
    for level in levels:
        coder = context_coder.ContextLatentCoder(meta.level(level), meta.entropy_model)
        for latent, geometry in items:
            total = total + coder.delta_costs(*coder.analyse(latent, geometry)[5])
    return context_coder.candidate_deltas()[np.argmin(total, axis=1)]


def rdoq_effect(levels, scratch):
    """Lines 'dataset rate: PSNR off -> on' for the training tiles and a 3 x 3 training mosaic, real codec."""
    tiles = potsdam_tiles(held_out=False)
    rows = [write_mosaic(tiles[i:i + 3], os.path.join(scratch, f'row{i}.tif')) for i in (0, 3, 6)]
    datasets = {'training tiles': tiles, 'training mosaic rows (3 files of 96 x 32)': rows}
    package = os.path.join(PROJECT_ROOT, 'models', 'rdnet')
    lines = []
    for name, rasters in datasets.items():
        curves = {}
        for state in (False, True):
            context_coder.ContextLatentCoder.rdoq = state
            curves[state] = curve(measure_package(package, rasters, levels))
        context_coder.ContextLatentCoder.rdoq = True
        for rate in RATES:
            (off, sa_off, inside), (on, sa_on, _inside) = at(curves[False], rate), at(curves[True], rate)
            lines.append(f'{name} {rate:.2f} bpppb: {off:.2f} -> {on:.2f} dB ({on - off:+.2f}), SA {sa_off:.3f} -> '
                         f'{sa_on:.3f}' + ('' if inside else ' (outside the measured curve)'))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--datasets', default='train,train-mosaic')
    parser.add_argument('--levels', default=None)
    parser.add_argument('--fit', action='store_true', help='print the default deltas fitted on the training tiles')
    parser.add_argument('--rdoq', action='store_true', help='the effect of RDOQ through the codec (training data)')
    args = parser.parse_args(argv)
    levels = _levels(args.levels)
    if args.fit:
        meta, items = latents('train')
        print('DEFAULT_DELTAS = ' + repr(fit_defaults(meta, items, levels).tolist()))
        return 0
    if args.rdoq:
        import shutil
        import tempfile

        scratch = tempfile.mkdtemp(prefix='rdoq_')
        try:
            print('\n'.join(rdoq_effect(levels, scratch)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return 0
    for name in args.datasets.split(','):
        meta, items = latents(name)
        print(f'\n{name}: latent bytes, learned prior vs context coder (both round-tripped)\n')
        print('| quality | prior B | context B | saving | with RDOQ B | saving (not at equal PSNR) |\n'
              '|---|---|---|---|---|---|')
        for level, old, new, rdoq in measure(meta, items, levels):
            print(f'| {level} | {old} | {new} | {100.0 * (1.0 - new / old):.1f} % | {rdoq} | '
                  f'{100.0 * (1.0 - rdoq / old):.1f} % |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
