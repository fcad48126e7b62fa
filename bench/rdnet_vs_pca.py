"""rdnet against the PCA codec at equal real rate on the held-out real Potsdam tiles.

usage: python -m bench.rdnet_vs_pca [--rates 0.1,0.15,...] [--csv out.csv] [--no-doc]
Both codecs compress each held-out tile to its own .ehc file (bytes on disk, header included), decompress it and
are measured like the shared checks (PSNR over the 202 bands on [0, 1], mean spectral angle), pooled over the tiles.
PCA's ten levels start at 0.127 bpppb, so it is also run at coarser steps (a temporary copy of the package with
other step metadata; same basis) to cover 0.1 bpppb without extrapolating. PSNR and SA are interpolated linearly in
log(rate) between measured points; the table says where a rate lies outside a curve. The result replaces the
`rdnet-vs-pca` section of docs/benchmarks.md.
"""
import argparse
import csv
import json
import os
import shutil
import tempfile

import numpy as np

from bench.reporting import replace_section
from training.measure import measure_package
from training.shared_data import HELD_OUT_TILES, PROJECT_ROOT, potsdam_tiles

RATES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6)
PCA_EXTRA_STEPS = (0.16, 0.12, 0.09, 0.075)  # coarser than PCA's quality 1 (0.06)


def package_with_steps(folder, steps, out):
    """A copy of a model package whose quality levels are `steps` (metadata only; the graphs are unchanged)."""
    import onnx

    os.makedirs(out, exist_ok=True)
    for name in ('encoder.onnx', 'decoder.onnx'):
        model = onnx.load(os.path.join(folder, name))
        entry = next(p for p in model.metadata_props if p.key == 'enmap_compress')
        meta = json.loads(entry.value)
        meta['quality_levels'] = [{'level': i + 1, 'step': float(s)} for i, s in enumerate(steps)]
        entry.value = json.dumps(meta, sort_keys=True)
        onnx.save(model, os.path.join(out, name))
    shutil.copy(os.path.join(folder, 'card.md'), os.path.join(out, 'card.md'))
    return out


def curve(rows):
    rows = sorted(rows, key=lambda r: r['bpppb'])
    return (np.log([r['bpppb'] for r in rows]), np.array([r['psnr'] for r in rows]),
            np.array([r['sa_deg'] for r in rows]))


def at(curve_points, rate):
    log_rate, psnr, sa = curve_points
    x = np.log(rate)
    inside = log_rate[0] <= x <= log_rate[-1]
    return float(np.interp(x, log_rate, psnr)), float(np.interp(x, log_rate, sa)), inside


def measure_models(scratch):
    tiles = potsdam_tiles(held_out=True)
    models = os.path.join(PROJECT_ROOT, 'models')
    pca_extra = package_with_steps(os.path.join(models, 'pca'), PCA_EXTRA_STEPS, os.path.join(scratch, 'pca'))
    pca = measure_package(os.path.join(models, 'pca'), tiles)
    pca += measure_package(pca_extra, tiles, levels=range(1, len(PCA_EXTRA_STEPS) + 1))
    rdnet = measure_package(os.path.join(models, 'rdnet'), tiles)
    return pca, rdnet


def compare(pca, rdnet, rates=RATES):
    pca_curve, rd_curve = curve(pca), curve(rdnet)
    table = []
    for rate in rates:
        p_psnr, p_sa, p_in = at(pca_curve, rate)
        r_psnr, r_sa, r_in = at(rd_curve, rate)
        table.append({'bpppb': rate, 'pca_psnr': p_psnr, 'rdnet_psnr': r_psnr, 'gain_db': r_psnr - p_psnr,
                      'pca_sa': p_sa, 'rdnet_sa': r_sa, 'measured_range': p_in and r_in})
    return table


def markdown(table):
    lines = ['| real bpppb | PCA PSNR dB | rdnet PSNR dB | gain dB | PCA SA ° | rdnet SA ° |',
             '|---|---|---|---|---|---|']
    for r in table:
        flag = '' if r['measured_range'] else ' (outside a measured curve)'
        lines.append(f"| {r['bpppb']:.2f}{flag} | {r['pca_psnr']:.2f} | {r['rdnet_psnr']:.2f} | "
                     f"{r['gain_db']:+.2f} | {r['pca_sa']:.3f} | {r['rdnet_sa']:.3f} |")
    return '\n'.join(lines)


def doc_section(pca, rdnet, table):
    import platform
    import time

    def points(rows):
        return '; '.join(f"{r['bpppb']:.3f} bpppb {r['psnr']:.2f} dB {r['sa_deg']:.3f}°"
                         for r in sorted(rows, key=lambda r: r['bpppb']))

    gains = [r['gain_db'] for r in table]
    return '\n'.join([
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} ({os.cpu_count()} CPUs) with "
        '`python -m bench.rdnet_vs_pca`; held-out tiles ' + ', '.join(HELD_OUT_TILES) + ', each its own `.ehc` '
        'file, rates pooled from the file sizes, PSNR and SA as the shared checks compute them.', '',
        markdown(table), '',
        f'Smallest gain from {table[0]["bpppb"]} to {table[-1]["bpppb"]} bpppb: {min(gains):+.2f} dB, largest '
        f'{max(gains):+.2f} dB; rdnet\'s spectral angle is lower at every rate: '
        f'{"yes" if all(r["rdnet_sa"] < r["pca_sa"] for r in table) else "no"}.', '',
        f'Measured points, rdnet (quality 1-10): {points(rdnet)}.', '',
        f'Measured points, pca (quality 1-10 and four coarser steps): {points(pca)}.'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rates', default=','.join(map(str, RATES)))
    parser.add_argument('--csv', help='also write the measured points of both curves here')
    parser.add_argument('--doc', default=os.path.join(PROJECT_ROOT, 'docs', 'benchmarks.md'))
    parser.add_argument('--no-doc', action='store_true', help='do not touch docs/benchmarks.md')
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix='rdnet_vs_pca_')
    try:
        pca, rdnet = measure_models(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, rows in (('pca', pca), ('rdnet', rdnet)):
        print(f'{name}: ' + ', '.join(f"{r['bpppb']:.4f} bpppb {r['psnr']:.2f} dB {r['sa_deg']:.3f}°"
                                      for r in sorted(rows, key=lambda r: r['bpppb'])))
    table = compare(pca, rdnet, [float(v) for v in args.rates.split(',')])
    print(markdown(table))
    print(f"smallest gain over these rates: {min(r['gain_db'] for r in table):+.2f} dB; rdnet SA lower at every rate: "
          f"{all(r['rdnet_sa'] < r['pca_sa'] for r in table)}")
    if not args.no_doc:
        replace_section(args.doc, 'rdnet-vs-pca', doc_section(pca, rdnet, table))
    if args.csv:
        with open(args.csv, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, ['model', 'level', 'bpppb', 'psnr', 'sa_deg', 'max_abs_error_dn'])
            writer.writeheader()
            for name, rows in (('pca', pca), ('rdnet', rdnet)):
                writer.writerows({'model': name, **r} for r in rows)
    return table


if __name__ == '__main__':
    main()
