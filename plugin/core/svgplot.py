"""Tiny inline-SVG charts for the HTML report: line charts (with NaN gaps), scatter marks and histograms.

No JavaScript, fonts or external files: the report must open anywhere, offline, years later.
"""
import html
import math

WIDTH, HEIGHT = 640, 300
SHORT_HEIGHT = 170  # a residual under its spectra
MARGIN = {'left': 64, 'right': 30, 'top': 28, 'bottom': 44}
PALETTE = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf')


def nice_ticks(low, high, count=5):
    """Round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    if not math.isfinite(raw):  # a span beyond float range (float64 data near its limits): no OverflowError
        raw = high / max(1, count) - low / max(1, count)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 10) for i in range(first, last + 1)]  # the last tick is >= high: nothing is cut
    return [t for t in ticks if math.isfinite(t)] or [0.0, 1.0]  # (but not beyond float range)


def _fmt(value):
    if value == 0:
        return '0'
    if abs(value) >= 1e6 or abs(value) < 1e-3:
        return f'{value:.3g}'
    return f'{value:.6g}'


class Frame:
    """Maps data coordinates onto the plot area of one chart."""

    def __init__(self, xs, ys, width=WIDTH, height=HEIGHT):
        finite_x = [v for v in xs if math.isfinite(v)] or [0.0, 1.0]
        finite_y = [v for v in ys if math.isfinite(v)] or [0.0, 1.0]
        self.xticks = nice_ticks(min(finite_x), max(finite_x))
        self.yticks = nice_ticks(min(finite_y), max(finite_y))
        self.width, self.height = width, height
        self.x0, self.x1 = self.xticks[0], self.xticks[-1]
        self.y0, self.y1 = self.yticks[0], self.yticks[-1]

    def px(self, x):
        return MARGIN['left'] + _fraction(x, self.x0, self.x1) * (self.width - MARGIN['left'] - MARGIN['right'])

    def py(self, y):
        return self.height - MARGIN['bottom'] - _fraction(y, self.y0, self.y1) * (self.height - MARGIN['top'] -
                                                                                   MARGIN['bottom'])


def _fraction(value, low, high):
    """Where `value` lies from `low` (0) to `high` (1); halved first where the span is beyond float range."""
    if not math.isfinite(high - low):
        value, low, high = value / 2, low / 2, high / 2
    return (value - low) / ((high - low) or 1.0)


def _axes(frame, x_label, y_label):
    parts = []
    bottom, left = frame.height - MARGIN['bottom'], MARGIN['left']
    for x in frame.xticks:
        px = frame.px(x)
        parts.append(f'<line x1="{px:.1f}" y1="{MARGIN["top"]}" x2="{px:.1f}" y2="{bottom}" class="grid"/>'
                     f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{_fmt(x)}</text>')
    for y in frame.yticks:
        py = frame.py(y)
        parts.append(f'<line x1="{left}" y1="{py:.1f}" x2="{frame.width - MARGIN["right"]}" y2="{py:.1f}" '
                     f'class="grid"/><text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    parts.append(f'<rect x="{left}" y="{MARGIN["top"]}" width="{frame.width - left - MARGIN["right"]}" '
                 f'height="{bottom - MARGIN["top"]}" class="frame"/>')
    parts.append(f'<text x="{(left + frame.width - MARGIN["right"]) / 2:.0f}" y="{frame.height - 8}" '
                 f'text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text transform="translate(14,{(MARGIN["top"] + bottom) / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    return ''.join(parts)


def _polylines(frame, xs, ys):
    """Point lists split at NaN, so gaps (e.g. water-vapour bands) stay gaps."""
    runs, current = [], []
    for x, y in zip(xs, ys):
        if math.isfinite(x) and math.isfinite(y):
            current.append(f'{frame.px(x):.1f},{frame.py(y):.1f}')
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _legend(frame, entries):
    parts = []
    x = MARGIN['left'] + 8
    for label, colour in entries:
        parts.append(f'<rect x="{x}" y="8" width="12" height="4" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="14">{html.escape(label)}</text>')
        x += 24 + 7 * len(label)
    return ''.join(parts)


def _svg(frame, title, body):
    return (f'<svg role="img" width="{frame.width}" height="{frame.height}" '
            f'viewBox="0 0 {frame.width} {frame.height}" class="chart"><title>{html.escape(title)}</title>'
            f'{body}</svg>')


def line_chart(series, title, x_label, y_label, marks=(), height=HEIGHT, zero_line=False):
    """series: [(label, xs, ys, dashed)]; marks: [(label, x, y)] drawn as labelled stars on top; zero_line: the
    y axis includes 0 and a line marks it (for residuals)."""
    all_x = [x for _, xs, _, _ in series for x in xs] + [m[1] for m in marks]
    all_y = [y for _, _, ys, _ in series for y in ys] + [m[2] for m in marks] + ([0.0] if zero_line else [])
    frame = Frame(all_x, all_y, height=height)
    body, legend = [_axes(frame, x_label, y_label)], []
    if zero_line:
        zero = frame.py(0.0)
        body.append(f'<line x1="{MARGIN["left"]}" y1="{zero:.1f}" x2="{frame.width - MARGIN["right"]}" '
                    f'y2="{zero:.1f}" class="zero"/>')
    for index, (label, xs, ys, dashed) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        dash = ' stroke-dasharray="5,3"' if dashed else ''
        for run in _polylines(frame, xs, ys):
            body.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.6"'
                        f'{dash}/>')
        legend.append((label, colour))
    for label, x, y in marks:
        if math.isfinite(x) and math.isfinite(y):
            px, py = frame.px(x), frame.py(y)
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" class="mark"/>'
                        f'<text x="{px + 9:.1f}" y="{py - 8:.1f}" class="marklabel">{html.escape(label)}</text>')
    body.append(_legend(frame, legend))
    return _svg(frame, title, ''.join(body))


def colour_bar(stops, low, high, label, width=WIDTH, height=56):
    """A horizontal colour scale: stops [(position 0..1, colour)], with round ticks from `low` to `high`."""
    left, right = MARGIN['left'], width - MARGIN['right']
    gradient = ''.join(f'<stop offset="{position:.3f}" stop-color="{colour}"/>' for position, colour in stops)
    ticks = [t for t in nice_ticks(low, high) if low - 1e-9 <= t <= high + 1e-9]
    span = (high - low) or 1.0
    marks = ''.join(f'<text x="{left + (t - low) / span * (right - left):.1f}" y="44" text-anchor="middle">'
                    f'{_fmt(t)}</text>' for t in ticks)
    return (f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="chart">'
            f'<title>{html.escape(label)}</title><defs><linearGradient id="scale">{gradient}</linearGradient></defs>'
            f'<rect x="{left}" y="8" width="{right - left}" height="20" fill="url(#scale)" stroke="#888"/>{marks}'
            f'<text x="{right}" y="{height - 1}" text-anchor="end">{html.escape(label)}</text></svg>')


def histogram(edges, counts, title, x_label, y_label='pixels x bands'):
    """Bars between consecutive edges."""
    frame = Frame([edges[0], edges[-1]], [0.0, max(counts or [1])])
    body = [_axes(frame, x_label, y_label)]
    base = frame.py(0.0)
    for left, right, count in zip(edges[:-1], edges[1:], counts):
        x0, x1, top = frame.px(left), frame.px(right), frame.py(count)
        body.append(f'<rect x="{x0:.1f}" y="{top:.1f}" width="{max(0.5, x1 - x0 - 0.5):.1f}" '
                    f'height="{max(0.0, base - top):.1f}" class="bar"/>')
    return _svg(frame, title, ''.join(body))


STYLE = ('svg.chart{background:#fff;margin:0.5em 0;font-size:11px}svg.chart .grid{stroke:#e4e4e4}'
         'svg.chart .frame{fill:none;stroke:#888}svg.chart .bar{fill:#1f77b4}'
         'svg.chart .mark{fill:#ffcc00;stroke:#000}svg.chart .marklabel{font-weight:bold}'
         'svg.chart .zero{stroke:#888;stroke-dasharray:2,2}')
