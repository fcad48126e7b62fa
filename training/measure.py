"""Measure a model package on held-out rasters through the real codec: real bytes, PSNR, SA per quality level."""
import math
import os
import shutil
import tempfile

from enmap_compress.plugin.core.bands import N_HYSPECNET

ALL_LEVELS = tuple(range(1, 11))


def measure_package(folder, rasters, levels=ALL_LEVELS):
    """Rows of {level, bpppb, psnr, sa_deg, max_abs_error_dn} pooled over the rasters (rate from total bytes)."""
    from enmap_compress.plugin.core.codec import compress, decompress
    from enmap_compress.plugin.core.evaluate import measure

    rows = []
    scratch = tempfile.mkdtemp(prefix='measure_')
    try:
        for level in levels:
            total_bits = total_pixels = 0
            sq, angle, worst = 0.0, 0.0, 0.0
            for index, raster in enumerate(rasters):
                ehc = os.path.join(scratch, f'{index}.ehc')
                rec = os.path.join(scratch, f'{index}.tif')
                packed = compress(raster, ehc, folder, level, 'cpu')
                decompress(ehc, rec, 'cpu')
                m = measure(raster, rec)
                total_bits += packed.file_bytes * 8
                total_pixels += packed.valid_pixels
                sq += 10 ** (-m['psnr'] / 10) * m['valid_pixels']
                angle += m['sa_deg'] * m['valid_pixels']
                worst = max(worst, m['max_abs_error_dn'])
            rows.append({'level': level, 'bpppb': total_bits / (total_pixels * N_HYSPECNET),
                         'psnr': -10 * math.log10(sq / total_pixels), 'sa_deg': angle / total_pixels,
                         'max_abs_error_dn': worst})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def card_table(rows, paper_bpppc=None):
    """The card's Markdown table; with paper_bpppc, a last column repeats the paper's float rate of the variant
    (the same at every level: a float32 latent without quantisation or entropy coding) next to the real rate."""
    extra = paper_bpppc is not None
    header = '| quality | real bpppb | PSNR dB | mean SA ° | max abs error DN |'
    lines = [header + (' paper float bpppc |' if extra else ''),
             '|---|---|---|---|---|' + ('---|' if extra else '')]
    lines += [f"| {r['level']} | {r['bpppb']:.4f} | {r['psnr']:.2f} | {r['sa_deg']:.3f} | {r['max_abs_error_dn']:.0f} |"
              + (f' {paper_bpppc:.4f} |' if extra else '') for r in rows]
    return '\n'.join(lines)
