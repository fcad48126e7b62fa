"""Model cards: the measured rate and quality per level, read from the table in a package's card.md.

Cards are written by training/measure.py::card_table, a Markdown table with a header such as
`| quality | real bpppb | PSNR dB | mean SA ° | max abs error DN |`. Columns are found by their names, so a
card may add or reorder columns. Nothing here needs onnxruntime, so the GUI can show cards without it.
"""
import re
from dataclasses import dataclass
from typing import Optional

from .bands import N_HYSPECNET

# Column name fragments (lower case) -> field; the first matching column wins.
_COLUMNS = (('quality', 'level'), ('bpppb', 'bpppb'), ('psnr', 'psnr'), ('sa', 'sa_deg'),
            ('max abs', 'max_abs_error_dn'))
_NUMBER = re.compile(r'[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


@dataclass(frozen=True)
class CardRow:
    level: int
    bpppb: float
    psnr: Optional[float] = None
    sa_deg: Optional[float] = None
    max_abs_error_dn: Optional[float] = None


def _cells(line):
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def _column_map(header):
    """field -> column index for a header row, or None when it is not a rate/quality table."""
    names = [cell.lower() for cell in header]
    found = {}
    for fragment, field in _COLUMNS:
        for index, name in enumerate(names):
            words = re.findall(r'[a-z]+', name)
            if index not in found.values() and (fragment in words or (' ' in fragment and fragment in name)):
                found[field] = index
                break
    return found if {'level', 'bpppb'} <= set(found) else None


def _number(text):
    match = _NUMBER.search(text.replace(',', ''))
    return float(match.group()) if match else None


def _row(cells, columns):
    values = {field: _number(cells[i]) if i < len(cells) else None for field, i in columns.items()}
    if values['level'] is None or values['bpppb'] is None or not 0 <= values['level'] <= 1000:
        return None  # (a level of 1e400 is infinite: int() of it raised OverflowError in every listing of models)
    values['level'] = int(values['level'])
    return CardRow(**values)


def card_rows(card_text):
    """The rows of the first rate/quality table in a card, sorted by level ([] when there is none)."""
    lines = [line for line in (card_text or '').splitlines()]
    for start, line in enumerate(lines):
        if not line.lstrip().startswith('|'):
            continue
        columns = _column_map(_cells(line))
        if columns is None:
            continue
        rows = []
        for body in lines[start + 1:]:
            if not body.lstrip().startswith('|'):
                break
            row = _row(_cells(body), columns)
            if row is not None:
                rows.append(row)
        return sorted(rows, key=lambda r: r.level)
    return []


def card_summary(card_text):
    """The card's first paragraph after the title, without its bold lead-in ("**What it is.**") and Markdown
    emphasis (for tooltips and the dialog)."""
    paragraphs = [p.strip() for p in re.split(r'\n\s*\n', card_text or '') if p.strip()]
    for paragraph in paragraphs:
        if not paragraph.startswith(('#', '|')):
            text = re.sub(r'^\*\*[^*]{1,40}\*\*\s*', '', ' '.join(paragraph.split()))
            return re.sub(r'\*\*|__|`', '', text)
    return ''


def expected_for(rows, quality):
    """The card row for a quality level, or None."""
    return next((row for row in rows if row.level == int(quality)), None)


def package_rows(package):
    """Card rows of a runtime.ModelPackage; falls back to rate/PSNR stored per level in the package metadata."""
    rows = card_rows(package.card())
    if rows:
        return rows
    try:
        levels = package.meta.quality_levels
    except Exception:  # noqa: BLE001 (no onnxruntime or a broken model: the card simply has no numbers)
        return []
    return [CardRow(q.level, q.bpppb, q.psnr, q.sa_deg) for q in levels if q.bpppb is not None]


def estimated_bytes(valid_pixels, bpppb, coded_bands=N_HYSPECNET):
    """Expected size of the .ehc file: valid pixels x coded bands x bpppb / 8."""
    return int(round(valid_pixels * coded_bands * bpppb / 8.0))
