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
