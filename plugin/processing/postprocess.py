"""Processing layer post-processors: outputs loaded by the toolbox, batch or modeler get the plugin's styles.

QGIS calls postProcessLayer() on the main thread after loading an output. A post-processor must outlive the
algorithm instance that created it (batch and the toolbox delete the instance first), and PyQGIS lets a Python
subclass be garbage-collected while C++ still points at it, so every instance is also kept in _ALIVE.
"""
from collections import deque

from qgis.core import QgsProcessingLayerPostProcessorInterface

from . import styling

# Post-processors are used right after their run, so the last few hundred are plenty even for long batches.
_ALIVE = deque(maxlen=512)


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies `style(layer)`; a styling failure is a warning, never a failed run."""

    def __init__(self, style):
        super().__init__()
        self.style = style

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS API name)
        try:
            self.style(layer)
        except Exception as exc:  # noqa: BLE001 (a style must never turn a finished run into an error)
            if feedback is not None:
                feedback.pushInfo(f'Could not style {layer.name()}: {exc}')

    @classmethod
    def create(cls, style):
        processor = cls(style)
        _ALIVE.append(processor)
        return processor


def like_input(template_renderer=None):
    """A factory of post-processors for a reconstruction: the input's renderer (cloned now) or true colour."""
    template = template_renderer.clone() if template_renderer is not None else None
    return lambda: StylePostProcessor.create(lambda layer: styling.style_like(layer, template))


def error_layer():
    return lambda: StylePostProcessor.create(styling.style_error)


def attach(context, output_name, factory, path=None):
    """Give each layer that output `output_name` (or file `path`) loads on completion a post-processor from
    `factory()` (one each: QGIS owns and deletes them). Returns how many layers got one."""
    attached = 0
    for layer_path, details in context.layersToLoadOnCompletion().items():
        if details.outputName == output_name or (path and layer_path == path):
            context.layerToLoadOnCompletionDetails(layer_path).setPostProcessor(factory())
            attached += 1
    return attached
