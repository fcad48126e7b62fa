"""`make demo`: the main job end to end on a synthetic EnMAP product, through qgis_process with the plugin enabled.

Writes demo_output/: the sample product (and its ZIP, which is what gets compressed), the .ehc file, the
reconstruction, the error image and the HTML report, and prints the metrics and where everything is.
"""
import json
import os
import sys
import time

from tools.qgis_env import qgis_process

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

OUT = os.path.join(ROOT, 'demo_output')


def run(args, home):
    started = time.perf_counter()
    proc = qgis_process(['run', *args[:1], '--json', '--', *args[1:]], home, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f'qgis_process {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}')
    results = json.loads(proc.stdout[proc.stdout.index('{'):])['results']
    print(f'  {args[0]}: {time.perf_counter() - started:.1f} s')
    return results


def main():
    from tools import synthetic

    os.makedirs(OUT, exist_ok=True)
    home = os.path.join(OUT, '.qgis_home')
    print('1. writing a synthetic EnMAP L2A product (256 x 256 px, 224 bands, int16) and its ZIP')
    product = synthetic.write_product(os.path.join(OUT, 'sample'), width=256, height=256, seed=7, make_zip=True)
    zip_path = product['zip'] if isinstance(product, dict) else product.zip
    ehc, rec = os.path.join(OUT, 'sample.ehc'), os.path.join(OUT, 'sample_reconstructed.tif')
    rec_eval, error = os.path.join(OUT, 'evaluate_reconstructed.tif'), os.path.join(OUT, 'evaluate_error.tif')
    report = os.path.join(OUT, 'evaluate_report.html')
    print('2. qgis_process: compress the product ZIP in place, decompress, evaluate (the default\n'
          '   model, rdnet when installed, quality 8),\n'
          '   and evaluate with a guaranteed maximum error of 10 DN')
    packed = run(['enmapcompress:compress', f'INPUT={zip_path}', 'QUALITY=8', 'DEVICE=1',
                  f'OUTPUT={ehc}'], home)
    run(['enmapcompress:decompress', f'INPUT={ehc}', 'DEVICE=1', f'OUTPUT={rec}'], home)
    metrics = run(['enmapcompress:evaluate', f'INPUT={zip_path}', 'QUALITY=8', 'DEVICE=1',
                   f'RECONSTRUCTED={rec_eval}', f'ERROR={error}', f'REPORT={report}'], home)
    bounded = run(['enmapcompress:evaluate', f'INPUT={zip_path}', 'DEVICE=1', 'MAX_ERROR=10',
                   f'RECONSTRUCTED={os.path.join(OUT, "bounded_reconstructed.tif")}',
                   f'ERROR={os.path.join(OUT, "bounded_error.tif")}'], home)
    print('\nResults (rate measured from the bytes on disk):')
    print(f"  compressed file   {os.path.getsize(ehc):,} bytes, {packed['BPPPB']:.4f} bpppb, "
          f"ratio {packed['COMPRESSION_RATIO']:.1f}:1")
    print(f"  PSNR {metrics['PSNR']:.2f} dB   SA {metrics['SA']:.3f} deg   SSIM {metrics['SSIM']:.4f}   "
          f"max abs error {metrics['MAX_ABS_ERROR']:.0f} DN")
    print(f"  MAX_ERROR=10     {bounded['BPPPB']:.4f} bpppb, PSNR {bounded['PSNR']:.2f} dB, "
          f"achieved max abs error {bounded['MAX_ABS_ERROR']:.0f} DN (guaranteed <= 10)")
    print('\nOutputs:')
    for label, path in (('product ZIP', zip_path), ('compressed', ehc), ('reconstructed', rec),
                        ('error image', error), ('report', report)):
        print(f'  {label:14s} {path}')


if __name__ == '__main__':
    main()
