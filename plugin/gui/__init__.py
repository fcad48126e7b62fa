"""The plugin's own GUI: the Compress dialog, its background job, result layers and the Diagnostics dialog.

Everything here prefills and launches the Processing algorithms; nothing re-implements them.
"""
