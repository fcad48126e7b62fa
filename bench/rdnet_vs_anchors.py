"""Learned models against the strongest classical anchor, PCA (KLT) + JPEG 2000, at equal real rate.

usage: python -m bench.rdnet_vs_anchors [--models rdnet,rdnet2] [--datasets potsdam,mosaic,synthetic]
                                        [--synthetic-size 256] [--rates 0.1,...] [--ks 4,6,...] [--levels 1-10]
Datasets: `potsdam` = the three held-out real tiles, each its own file (rates and errors pooled); `mosaic` = the
three side by side in one file (224 x 32 x 96); `synthetic` = tools.synthetic.write_scene of the given size
(seed 0; 1200 for the full tile). Models are measured through the real codec (bytes on disk, header included,
training.measure.measure_package); the anchor as bench/pca_jpeg2000.py builds it (KLT on the nine training tiles,
one OpenJPEG codestream with PCRD rate allocation, best K per rate). PSNR and SA are interpolated linearly in log
rate between measured points; gain = model - anchor in dB, a rate outside a measured curve is marked.
"""
import argparse
import os
import shutil
import sys
import time

from bench import pca_jpeg2000
from bench.rdnet_vs_pca import at, curve
from bench.reporting import scratch_dir
from bench.scenes import load_scene, synthetic_scene, write_mosaic
from training.measure import ALL_LEVELS, measure_package
from training.shared_data import PROJECT_ROOT, potsdam_tiles

RATES = (0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50, 0.60)
SYNTHETIC_KS = (16, 32, 64, 96, 128)  # the noisy synthetic scene needs K > 48 above 0.1 bpppb; minutes per K


def rasters_of(name, synthetic_size, scratch):
    """The raster files of a dataset (each coded as its own file)."""
    held_out = potsdam_tiles(held_out=True)
    if name == 'potsdam':
        return held_out
    if name == 'mosaic':
        return [write_mosaic(held_out, os.path.join(scratch, 'mosaic.tif'))]
    if name == 'synthetic':
        return [synthetic_scene(synthetic_size, synthetic_size)]
    raise SystemExit(f'unknown dataset {name} (potsdam, mosaic or synthetic)')


def compare(models, anchor, rates):
    """Rows {bpppb, anchor (psnr, sa), per model (psnr, sa, inside)}; anchor: {rate: (psnr, sa, k)}."""
    curves = {name: curve(rows) for name, rows in models.items()}
    table = []
    for rate in rates:
        entry = {'bpppb': rate, 'anchor': anchor.get(rate)}
        for name, points in curves.items():
            entry[name] = at(points, rate)
        table.append(entry)
    return table


def markdown(table, names):
    head = '| bpppb | PCA+J2K dB / SA ° (K) | ' + ' | '.join(f'{n} dB / SA ° | {n} gain dB' for n in names) + ' |'
    lines = [head, '|' + '---|' * (2 + 2 * len(names))]
    for r in table:
        anchor = r['anchor']
        cells = [f"{r['bpppb']:.2f}", f'{anchor[0]:.2f} / {anchor[1]:.3f} ({anchor[2]})' if anchor else 'outside']
        for name in names:
            psnr, sa, inside = r[name]
            flag = '' if inside else ' *'
            cells.append(f'{psnr:.2f} / {sa:.3f}{flag}')
            cells.append(f'{psnr - anchor[0]:+.2f}' if anchor else '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def summary(table, names):
    out = []
    for name in names:
        rows = [r for r in table if r['anchor'] and r[name][2]]
        if not rows:
            out.append(f'{name}: no rate inside both curves')
            continue
        gains = [r[name][0] - r['anchor'][0] for r in rows]
        lower_sa = all(r[name][1] < r['anchor'][1] for r in rows)
        out.append(f'{name}: gain {min(gains):+.2f} .. {max(gains):+.2f} dB over {len(rows)} rates; '
                   f'lower SA at every one: {lower_sa}')
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default='rdnet')
    parser.add_argument('--datasets', default='potsdam,mosaic,synthetic')
    parser.add_argument('--synthetic-size', type=int, default=256)
    parser.add_argument('--rates', default=','.join(f'{r:g}' for r in RATES))
    parser.add_argument('--ks', default=None, help='K values of the anchor (default: bench.pca_jpeg2000\'s; fewer '
                                                   'on the synthetic tile)')
    parser.add_argument('--levels', default=None, help='quality levels of the models, e.g. 1-10 or 2,4,6')
    args = parser.parse_args(argv)
    rates = tuple(float(r) for r in args.rates.split(','))
    names = args.models.split(',')
    levels = _levels(args.levels)
    mean, basis = pca_jpeg2000.fit_klt(potsdam_tiles(held_out=False))
    scratch = scratch_dir('vs_anchors_')
    try:
        for dataset in args.datasets.split(','):
            started = time.perf_counter()
            rasters = rasters_of(dataset, args.synthetic_size, scratch)
            ks = tuple(int(k) for k in args.ks.split(',')) if args.ks else (
                SYNTHETIC_KS if dataset == 'synthetic' else pca_jpeg2000.DEFAULT_KS)
            scenes = [load_scene(p) for p in rasters]
            anchor = pca_jpeg2000.best_k_table(scenes, mean, basis, ks, rates, scratch)
            models = {name: measure_package(os.path.join(PROJECT_ROOT, 'models', name), rasters, levels)
                      for name in names}
            for name, rows in models.items():
                print(f'{dataset} {name}: ' + ', '.join(f"q{r['level']} {r['bpppb']:.4f} bpppb {r['psnr']:.2f} dB "
                                                         f"{r['sa_deg']:.3f}°" for r in rows))
            size = f' {args.synthetic_size}x{args.synthetic_size}' if dataset == 'synthetic' else ''
            print(f'\n{dataset}{size}: models vs PCA + JPEG 2000 at equal real rate (* outside the measured curve; '
                  f'{time.perf_counter() - started:.0f} s)')
            table = compare(models, anchor, rates)
            print(markdown(table, names))
            print('\n'.join(summary(table, names)), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _levels(text):
    if not text:
        return ALL_LEVELS
    if '-' in text:
        lo, hi = (int(v) for v in text.split('-'))
        return tuple(range(lo, hi + 1))
    return tuple(int(v) for v in text.split(','))


if __name__ == '__main__':
    sys.exit(main())
