"""Lossless and near-lossless rates against CCSDS-123.0-B-2 on the held-out tiles (issue 15).

usage: python -m bench.lossless [--models rdnet] [--bounds 0,1,2,5,10,25,50,100] [--datasets tiles,mosaic]
                                [--threads 2] [--no-doc]

Same conventions as ../shared/docs/strong-anchors.md section 2 and bench/scenes.py: `tiles` = the three held-out
real 32x32 tiles, each compressed as its own file, rate pooled (total bytes / total samples); `mosaic` = the same
tiles side by side in one 96x32 file (x order 128_0 | 64_32 | 96_96). Lossless (MAX_ERROR=0) rates count all 224
bands, near-lossless rates 202; every file is decoded and checked (bit-exact, or within the bound) before its
rate counts. Prints ours, CCSDS-123's figure, the ratio and the issue's target ratio (lossless <= 0.95,
1-10 DN <= 0.85, 25-100 DN <= 0.6), and writes the table into docs/benchmarks.md (section lossless-results).
"""
import argparse
import os
import shutil
import sys
import time

from bench.rate_distortion import run_model
from bench.reporting import DOCS_DIR, PROJECT_ROOT, git_commit, machine, replace_section, scratch_dir
from bench.scenes import CODED, load_scene, write_mosaic
from enmap_compress.plugin.core.runtime import find_model

HELD_OUT = ('enmap_potsdam_tile_128_0', 'enmap_potsdam_tile_64_32', 'enmap_potsdam_tile_96_96')  # mosaic order
# ../shared/docs/strong-anchors.md section 2: CCSDS-123.0-B-2 bpppb (tiles, mosaic) at each E
CCSDS = {0: (5.845, 5.802), 1: (4.402, 4.356), 2: (3.671, 3.624), 5: (2.634, 2.556), 10: (1.878, 1.813),
         25: (1.121, 1.027), 50: (0.731, 0.643), 100: (0.500, 0.421)}
BOUNDS = tuple(CCSDS)


def target_ratio(bound):
    return 0.95 if bound == 0 else 0.85 if bound <= 10 else 0.6


def held_out_paths():
    folder = os.environ.get('ENMAP_SHARED_DATA', os.path.join(PROJECT_ROOT, '..', 'shared', 'data'))
    paths = [os.path.join(folder, 'enmap_potsdam', f'{name}.tif') for name in HELD_OUT]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit(f'held-out tiles not found: {", ".join(missing)} (set ENMAP_SHARED_DATA)')
    return paths


def run(models, bounds, datasets, threads):
    scratch = scratch_dir('lossless_')
    rows = []
    try:
        tiles = held_out_paths()
        data = {'tiles': tiles, 'mosaic': [write_mosaic(tiles, os.path.join(scratch, 'mosaic.tif'))]}
        for name in datasets:
            scenes = [load_scene(p) for p in data[name]]
            for model in models:
                package = find_model(model)
                for bound in bounds:
                    bands = 224 if bound == 0 else CODED
                    result, levels = run_model(package, data[name], scenes, scratch, None, bound, bands, threads)
                    if result['max_abs_dn'] > bound:
                        raise SystemExit(f'{model} broke the bound {bound} on {name}: {result["max_abs_dn"]} DN')
                    anchor = CCSDS[bound][0 if name == 'tiles' else 1]
                    ratio = result['bpppb'] / anchor
                    rows.append({'dataset': name, 'model': model, 'bound': bound, 'bands': bands,
                                 'bpppb': result['bpppb'], 'psnr': result['psnr'], 'ccsds': anchor, 'ratio': ratio,
                                 'target': target_ratio(bound), 'met': ratio <= target_ratio(bound),
                                 'enc_s': result['enc_s'], 'dec_s': result['dec_s'], 'quality': sorted(set(levels))})
                    r = rows[-1]
                    print(f"  {name:<6} {model:<8} E={bound:<3} {r['bpppb']:.4f} bpppb ({bands} bands) "
                          f"CCSDS {anchor:.3f}  ratio {ratio:.3f} (target <= {r['target']:.2f}: "
                          f"{'met' if r['met'] else 'NOT met'})  {r['enc_s']:.1f}+{r['dec_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def table(rows):
    lines = ['| data | model | E (DN) | bands | ours bpppb | PSNR dB | CCSDS-123 bpppb | ratio | target | met | '
             'enc+dec s | base quality |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        psnr = '∞' if r['psnr'] == float('inf') else f"{r['psnr']:.1f}"
        lines.append(f"| {r['dataset']} | {r['model']} | {r['bound']} | {r['bands']} | {r['bpppb']:.3f} | {psnr} | "
                     f"{r['ccsds']:.3f} | {r['ratio']:.3f} | <= {r['target']:.2f} | {'yes' if r['met'] else 'no'} | "
                     f"{r['enc_s'] + r['dec_s']:.1f} | {r['quality']} |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default='rdnet')
    parser.add_argument('--bounds', default=','.join(map(str, BOUNDS)))
    parser.add_argument('--datasets', default='tiles,mosaic')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--doc', default=os.path.join(DOCS_DIR, 'benchmarks.md'))
    parser.add_argument('--no-doc', action='store_true')
    args = parser.parse_args(argv)
    bounds = [int(b) for b in args.bounds.split(',') if b]
    unknown = set(bounds) - set(CCSDS)
    if unknown:
        raise SystemExit(f'no CCSDS-123 figure for E = {sorted(unknown)} (known: {sorted(CCSDS)})')
    started = time.time()
    rows = run(args.models.split(','), bounds, args.datasets.split(','), args.threads)
    elapsed = time.time() - started
    text = table(rows)
    print(text)
    if not args.no_doc:
        command = 'python -m bench.lossless ' + ' '.join(argv if argv is not None else sys.argv[1:])
        header = (f'Generated by `{command.strip()}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, commit '
                  f'{git_commit()}, in {elapsed / 60:.1f} min. Machine: {machine()}.\n'
                  'CCSDS-123.0-B-2 figures: ../shared/docs/strong-anchors.md section 2. Ratio = ours / CCSDS-123.\n')
        replace_section(args.doc, 'lossless-results', header + '\n' + text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
