"""A self-contained HTML report of an evaluation (no external files, scripts or fonts; charts are inline SVG and
the quick looks inline PNG data), readable on its own: metrics, images, spectra with their residual, errors."""
import base64
import html
import logging
import math
import os
import re
import time

from . import svgplot
from .bands import DN_PEAK, N_HYSPECNET
from .outputs import atomic_output

LOG = logging.getLogger('enmap_compress')

ROWS = (
    ('PSNR', 'psnr', '{:.2f} dB', f'HySpecNet convention: the {N_HYSPECNET} bands less dead ones, DN at EnMAP scale '
     f'clipped to 0..{DN_PEAK:.0f}, peak {DN_PEAK:.0f}, over valid pixels'),
    ('Mean spectral angle', 'sa_deg', '{:.3f}°', 'per pixel on the same bands and clipped values as PSNR, mean over '
     'valid pixels (a zero spectrum: 0° against a zero one, 90° against any other)'),
    ('SSIM', 'ssim', '{:.4f}', 'of the clipped values (data range 1), uniform 7x7 windows lying wholly on valid '
     'pixels, averaged over the windows of every evaluated band'),
    ('RMSE', 'rmse_dn', '{:.1f} DN', 'over the evaluated bands, of the clipped values (as PSNR)'),
    ('Maximum absolute error', 'max_abs_error_dn', '{:.5g} DN', 'worst sample of the evaluated bands, DN at EnMAP '
     'scale, unclipped'),
    ('Rate', 'bpppb', '{:.4f} bpppb', f'bits on disk / (valid pixels x {N_HYSPECNET}), whichever bands the file codes'),
    ('Compression ratio', 'compression_ratio', '{:.1f} : 1', f'valid pixels x {N_HYSPECNET} samples as int16 (16 bits '
     'each) / bits on disk'),
    ('Compressed size', 'file_bytes', '{:,} bytes', ''),
    ('Valid pixels', 'valid_pixels', '{:,}', ''),
)

STYLE = ('body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}table{border-collapse:collapse}'
         'td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#eef}'
         '.note{color:#666;font-size:90%}h2{margin-top:1.6em;border-bottom:1px solid #ddd}'
         'h1{font-size:1.5em;overflow-wrap:anywhere;word-break:break-word}'
         '.looks{display:flex;flex-wrap:wrap;gap:1em}.looks figure{margin:0}.looks img{image-rendering:pixelated;'
         'background:repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px;max-width:100%}'
         'figcaption{font-size:90%;color:#444}' + svgplot.STYLE)


def _fmt(template, value):
    """A value by its row's template; infinity as ∞ in it (a bit-exact PSNR: '∞ dB'), NaN as 'n/a' (not
    measured: the SSIM of an image smaller than its window), where '{:.2f}'.format gave 'inf dB' and 'nan'."""
    if isinstance(value, float) and not math.isfinite(value):
        return 'n/a' if math.isnan(value) else re.sub(r'\{[^}]*\}', '∞' if value > 0 else '-∞', template)
    try:
        return template.format(value)
    except (ValueError, TypeError):
        return str(value)


BOUND_NOTE = 'no valid sample of a coded band is further off the input (lossless: bit-exact)'
FOREIGN_UNITS = ("in the input's own units: the errors above are of the input converted to DN at EnMAP scale "
                 "(reflectance x 10000)")


def _bound_row(result):
    """(label, text, note) of the guaranteed error bound, or None for a lossy file. Any bound, not only MAX_ERROR
    (a per-band or relative one was left out); and where the input is not at EnMAP's scale its units are said: the
    bound is in the input's units, the errors beside it in EnMAP DN (a bound of 5 read as broken by an error of 10)."""
    bound, max_error = result.get('error_bound'), result.get('max_error')
    if not bound and max_error is None:
        return None
    text = bound or ('lossless' if max_error == 0 else f'<= {max_error} DN')
    if result.get('enmap_scale', True) or text == 'lossless':
        return 'Guaranteed error bound', text, BOUND_NOTE
    return 'Guaranteed error bound', f'{text} (input units)', f'{BOUND_NOTE}; {FOREIGN_UNITS}'


def _metrics_table(result):
    rows = [(label, _fmt(fmt, result.get(key)), note) for label, key, fmt, note in ROWS]
    bound = _bound_row(result)
    if bound is not None:
        rows.insert(5, bound)
    cells = ''.join(f'<tr><th>{html.escape(label)}</th><td>{html.escape(text)}</td>'
                    f'<td class="note">{html.escape(note)}</td></tr>' for label, text, note in rows)
    return f'<table>{cells}</table>'


def _run_line(result):
    return (f"model <b>{html.escape(str(result.get('model')))}</b>, quality {result.get('quality')}, "
            f"device {html.escape(str(result.get('device')))} ({html.escape(str(result.get('provider')))}); "
            f"compress {result.get('compress_seconds', 0):.2f} s, "
            f"decompress {result.get('decompress_seconds', 0):.2f} s")


def _section(title, chart, note=''):
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ''
    return f'<h2>{html.escape(title)}</h2>{chart}{note_html}'


def _residual(sample):
    return [b - a for a, b in zip(sample.original, sample.reconstructed)]  # NaN stays NaN: a gap


def _spectra_section(data):
    charts = []
    for sample in data.samples:
        series = [('original', data.wavelengths, sample.original, False),
                  ('reconstructed', data.wavelengths, sample.reconstructed, True)]
        title = f'{sample.label} (x {sample.x}, y {sample.y}): RMSE {sample.rmse_dn:.1f} DN'
        residual = svgplot.line_chart([('reconstructed - original', data.wavelengths, _residual(sample), False)],
                                      f'{title}: residual', 'wavelength (nm)', 'residual (DN)',
                                      height=svgplot.SHORT_HEIGHT, zero_line=True)
        spectra = svgplot.line_chart(series, title, 'wavelength (nm)', f'DN (reflectance x {DN_PEAK:.0f})')
        charts.append(f'<h3>{html.escape(title)}</h3>' + spectra + residual)
    note = ('Under each pair of spectra, their difference: at high quality the two curves coincide, and only the '
            'residual shows where the error is. Gaps are the bands the compressors do not code (water-vapour '
            'absorption and dead bands). The last chart is the pixel with the largest RMSE.')
    return _section('Spectra at sample pixels', ''.join(charts), note)


def _png(data, alt, width):
    encoded = base64.b64encode(data).decode('ascii')
    return f'<img alt="{html.escape(alt)}" width="{width}" src="data:image/png;base64,{encoded}">'


def _images_section(looks, width=320):
    """True colour of the original and the reconstruction (one stretch for both) and the error map with its
    colour bar."""
    from .quicklook import scale_stops

    figures = [(looks.original_png, 'original, true colour'), (looks.reconstructed_png, 'reconstruction, true '
                                                                                          'colour'),
               (looks.error_png, 'error per pixel (RMSE over the evaluated bands)')]
    body = ''.join(f'<figure>{_png(data, caption, width)}<figcaption>{html.escape(caption)}</figcaption></figure>'
                   for data, caption in figures)
    bar = svgplot.colour_bar(scale_stops(looks.error_scale_dn), 0.0, looks.error_scale_dn, 'RMSE (DN)')
    note = (f'Bands nearest to 640, 550 and 460 nm, both stretched from 2 % to 98 % of the original. One quick-look '
            f'pixel per {looks.step} x {looks.step} image pixels; transparent: no data. The error map runs from 0 to '
            f'{looks.error_scale_dn:g} DN (about the 99th percentile).')
    return _section('The image', f'<div class="looks">{body}</div>{bar}', note)


def _quick_look(data, source, reconstructed):
    """The quick looks the evaluation gathered, else read from the files; None when neither works."""
    from .errors import CancelledError, EnmapCompressError

    looks = getattr(data, 'quicklook', None)
    if looks is not None or not reconstructed or not os.path.exists(reconstructed):
        return looks
    try:
        from .quicklook import from_files

        return from_files(source, reconstructed)
    except CancelledError:
        raise
    except (EnmapCompressError, OSError, ValueError) as exc:
        LOG.warning('report without quick looks: %s', exc)
        return None


def _band_error_section(data):
    chart = svgplot.line_chart([('RMSE per band', data.wavelengths, data.band_rmse_dn, False)],
                               'RMSE per band', 'wavelength (nm)', 'RMSE (DN)')
    return _section('Error per band', chart, 'Root mean square error of each band over all valid pixels.')


def _histogram_section(data):
    chart = svgplot.histogram(data.hist_edges, data.hist_counts, 'Error histogram',
                              'reconstructed - original (DN)')
    return _section('Error histogram', chart, 'Signed errors of every evaluated sample; the outer bins also '
                                              'count the rare errors beyond the shown range.')


def _rd_section(result, curves):
    series = [(f'{model_id} (card)', [r.bpppb for r in rows], [r.psnr if r.psnr is not None else math.nan
                                                                for r in rows], model_id != result.get('model'))
              for model_id, rows in curves]
    mark = (f"this image: {result.get('model')} q{result.get('quality')}", float(result.get('bpppb', math.nan)),
            float(result.get('psnr', math.nan)))
    chart = svgplot.line_chart(series, 'Rate-distortion', 'rate (bpppb)', 'PSNR (dB)', marks=[mark])
    return _section('Rate-distortion', chart, 'Lines: the bundled models as measured on held-out EnMAP tiles '
                                              '(their cards). The marked point is this image.')


def render_report(result, source, data=None, curves=(), images=None):
    """The report as one HTML string. data: a report_data.ReportData; curves: [(model_id, [CardRow])];
    images: a quicklook.QuickLook (default: the one in `data`, else read from the files)."""
    title = f'EnMAP Compress report: {os.path.basename(str(source))}'
    parts = [f'<p>{_run_line(result)}</p>', _metrics_table(result)]
    if data is not None and images is None:
        images = _quick_look(data, source, result.get('reconstructed'))
    if images is not None:
        parts.append(_images_section(images))
    if curves:
        parts.append(_rd_section(result, curves))
    if data is not None:
        parts += [_spectra_section(data), _band_error_section(data), _histogram_section(data)]
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{"".join(parts)}'
            f'<p class="note">Generated {time.strftime("%Y-%m-%d %H:%M")}.</p></body></html>')


def model_curves():
    """(model_id, card rows) of every installed model whose card has a rate/PSNR table."""
    from .cards import package_rows
    from .runtime import list_models

    curves = []
    for package in list_models():
        rows = [row for row in package_rows(package) if row.psnr is not None]
        if rows:
            curves.append((package.model_id, rows))
    return curves


def _plot_data(source, reconstructed, progress, is_cancelled):
    """The plots' data, or None when it cannot be read: a report without plots beats no report."""
    from .errors import CancelledError, EnmapCompressError
    from .report_data import report_data

    if not reconstructed or not os.path.exists(reconstructed):
        return None
    try:
        return report_data(source, reconstructed, progress=progress, is_cancelled=is_cancelled)
    except CancelledError:
        raise
    except (EnmapCompressError, OSError, ValueError) as exc:
        LOG.warning('report without plots: %s', exc)
        return None


def write_report(path, result, source, reconstructed=None, plots=True, progress=None, is_cancelled=None,
                 data=None):
    """Write the report; with plots, read `source` and the reconstruction (default result['reconstructed']),
    unless `data` (a report_data.ReportData, as evaluate gathers it in its one pass) is given."""
    curves = ()
    if not plots:
        data = None
    elif data is None:
        data = _plot_data(source, reconstructed or result.get('reconstructed'), progress, is_cancelled)
    if plots:
        curves = model_curves()
    with atomic_output(path) as tmp, open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(render_report(result, source, data, curves))
