"""Model cards in the dialog: what each installed model is and what it measured on held-out EnMAP tiles."""
from dataclasses import dataclass

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from ..core import cards, runtime


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    title: str
    summary: str
    rows: tuple
    card: str


def installed_models():
    """The installed models in the order of the algorithms' MODEL enum, with their card numbers."""
    return [ModelInfo(p.model_id, p.title(), cards.card_summary(p.card()), tuple(cards.package_rows(p)), p.card())
            for p in runtime.list_models()]


def short_text(text, limit=230):
    """The first sentences of `text` up to about `limit` characters (the rest is in the tooltip and the card)."""
    if len(text) <= limit:
        return text
    cut = text.rfind(' ', 0, limit)
    return text[:cut if cut > 0 else limit].rstrip(' ,;:') + ' …'


class CardViewer(QDialog):
    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f'Model card: {model.model_id}')
        self.setAttribute(Qt.WA_DeleteOnClose)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        if hasattr(self.browser, 'setMarkdown'):  # Qt >= 5.14
            self.browser.setMarkdown(model.card)
        else:
            self.browser.setPlainText(model.card)
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(640, 560)


REFERENCE_MODEL = 'pca'  # the classical anchor every learned model must beat
FAR_BEHIND_DB = 3.0


def quality_gap_db(rows, reference_rows):
    """Median PSNR shortfall (dB) of a model against the reference at the same measured rate, from the two
    cards; None when either card has no PSNR column."""
    import numpy as np

    ref = sorted((r.bpppb, r.psnr) for r in reference_rows if r.psnr is not None)
    own = [(r.bpppb, r.psnr) for r in rows if r.psnr is not None]
    if len(ref) < 2 or not own:
        return None
    rates, psnrs = np.array(ref).T
    return float(np.median([np.interp(rate, rates, psnrs) - psnr for rate, psnr in own]))


def far_behind_warning(model, models):
    """Plain words when `model` is far behind the reference model at equal file size ('' otherwise)."""
    reference = next((m for m in models if m.model_id == REFERENCE_MODEL), None)
    if model is None or reference is None or model.model_id == REFERENCE_MODEL:
        return ''
    gap = quality_gap_db(model.rows, reference.rows)
    if gap is None or gap < FAR_BEHIND_DB:
        return ''
    return (f'Far behind: at the same file size, images come back with about {10 ** (gap / 20):.0f} times the '
            f'error of {REFERENCE_MODEL} ({gap:.0f} dB lower PSNR on held-out EnMAP tiles). It is here to compare '
            f'with the published method; for real work choose {REFERENCE_MODEL} or the default model.')
