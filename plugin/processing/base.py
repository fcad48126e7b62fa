"""One base class for every EnMAP Compress algorithm: typed parameter helpers, errors, progress and cancel."""
import os
import traceback

from qgis.core import (
    Qgis,
    QgsExpressionContext,
    QgsMessageLog,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProperty,
)
from qgis.PyQt.QtCore import QCoreApplication, QThread
from qgis.PyQt.QtGui import QIcon

from .. import dependencies
from ..core import runtime
from ..core.errors import EnmapCompressError, os_error_text
from ..core.tiling import Progress
from ..paths import resource_path

LOG_TAG = 'EnMAP Compress'  # the tab of QGIS's message log that holds an unexpected error's traceback

DEVICE_LABELS = ('auto — CUDA when it really works, else CPU', 'cpu', 'cuda')
MAX_MODEL_LABEL = 48  # characters: QGIS sizes the algorithm dialog's form to its widest label or combo box, and an
# 80-character model title pushed the file buttons out of a dialog of the default size


def is_product_path(value):
    """A path the core opens but QGIS cannot load as a layer: a product folder, METADATA.XML or product ZIP."""
    return isinstance(value, str) and (os.path.isdir(value) or value.lower().endswith(('.xml', '.zip')))


def rejection(definition, value):
    """One line saying why QGIS refused `value` for `definition`, and what it takes: QGIS's own "Incorrect
    parameter value for MODEL (Compressor model)" said neither (MODEL=pca, QUALITY=0, DEVICE=3)."""
    name, shown = definition.name(), repr(value)
    if isinstance(definition, QgsProcessingParameterEnum) and definition.options():
        options = ', '.join(f'{i}: {label.split(" — ", 1)[0]}' for i, label in enumerate(definition.options()))
        return f'{name} must be the number of one of its options ({options}), not {shown}'
    if isinstance(definition, QgsProcessingParameterNumber):
        kind = 'an integer' if definition.dataType() == QgsProcessingParameterNumber.Integer else 'a number'
        low, high = definition.minimum(), definition.maximum()
        span = f'from {low:g} to {high:g}' if high < 1e300 else f'of at least {low:g}'
        empty = ' (or empty)' if definition.flags() & QgsProcessingParameterDefinition.FlagOptional else ''
        return f'{name} must be {kind} {span}{empty}, not {shown}'
    return f'Incorrect parameter value for {name} ({definition.description()}): {shown}'


def model_label(model_id, title):
    """'id — title', the title's closing '(...)' left out when the label would be longer than MAX_MODEL_LABEL."""
    title = title.split('—', 1)[-1].strip()
    if len(f'{model_id} — {title}') > MAX_MODEL_LABEL and title.endswith(')') and ' (' in title:
        title = title.rsplit(' (', 1)[0]
    return f'{model_id} — {title}'


def model_choices():
    """(id, label) of every installed model; labels begin with the id, as qgis_process and scripts rely on."""
    return [(p.model_id, model_label(p.model_id, p.title())) for p in runtime.list_models()]


class EnmapAlgorithm(QgsProcessingAlgorithm):
    """Subclasses define NAME, LABEL, HELP, `define()` and `execute(parameters, context, feedback)`.

    Not `run`: that would hide QgsProcessingAlgorithm.run(), which processing.run() and the batch dialog call.
    """

    NAME = ''
    LABEL = ''
    HELP = ''
    GROUP = 'Compression'
    ICON = 'icon.svg'
    STYLES = {}  # output name -> 'like_input' | 'true_colour' | 'error': how the loaded layer is styled

    def createInstance(self):  # noqa: N802 (QGIS API name)
        return type(self)()

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802 (QGIS API name)
        return self.LABEL

    def group(self):
        return self.GROUP

    def groupId(self):  # noqa: N802 (QGIS API name)
        return self.GROUP.lower()

    def icon(self):
        path = resource_path(self.ICON)
        return QIcon(path if os.path.isfile(path) else resource_path('icon.svg'))

    def shortHelpString(self):  # noqa: N802 (QGIS API name)
        return self.HELP

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API name)
        self._models = model_choices()
        self.define()

    def canExecute(self):  # noqa: N802 (QGIS API name)
        missing = dependencies.missing()
        if missing:
            return False, dependencies.message(missing)
        if not runtime.list_models():
            return False, 'No compression model is installed (the plugin folder models/ is empty).'
        return True, ''

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """As QGIS does, except that INPUT may also be a path QGIS cannot load as a layer, which the core opens
        or refuses with a message naming it: a product folder, METADATA.XML or product ZIP, a GDAL path
        (/vsizip/...), a missing or unreadable file (QGIS said only "Incorrect parameter value for INPUT");
        and a refused value is told with what the parameter takes."""
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if definition.name() == 'INPUT' and isinstance(value, str) and value.strip():
                continue
            if not definition.checkValueIsAcceptable(value, context):
                return False, rejection(definition, value)
        return True, ''

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        ok, message = self.canExecute()
        if not ok:
            raise QgsProcessingException(message)
        try:
            self._results = self.execute(parameters, context, feedback)
        except QgsProcessingException:  # (a parameter's own message)
            raise
        except EnmapCompressError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except OSError as exc:  # one line, as for the core's own errors (QGIS showed the whole traceback)
            raise QgsProcessingException(os_error_text(exc)) from exc
        except Exception as exc:  # a bug: its traceback goes to the log, one line to the user
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            raise QgsProcessingException(f'unexpected {type(exc).__name__}: {exc} (the traceback is in the log, '
                                         f'tab {LOG_TAG}; please report it)') from exc
        return self._results

    # --- styling of loaded outputs (main thread: prepare and postProcess run there) ----------------------------

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API name)
        self._results = {}
        self._template = None
        if 'like_input' in self.STYLES.values():
            self._template = self.input_renderer(parameters, context)
        return True

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802 (QGIS API name)
        from . import postprocess

        factories = {'like_input': lambda: postprocess.like_input(self._template),
                     'true_colour': postprocess.like_input, 'error': postprocess.error_layer}
        for output, style in self.STYLES.items():
            path = (getattr(self, '_results', None) or {}).get(output)
            postprocess.attach(context, output, factories[style](), path if isinstance(path, str) else None)
        return {}  # an empty map keeps processAlgorithm's results

    def input_renderer(self, parameters, context, name='INPUT'):
        """A clone of the input layer's renderer when the input is a layer of the project, else None.

        Only on the main thread: a model runs its children's prepare() in a worker, where project layers are
        off limits."""
        app = QCoreApplication.instance()
        if app is None or QThread.currentThread() != app.thread():
            return None
        value = parameters.get(name)
        if isinstance(value, str) and (os.path.isdir(value) or value.lower().endswith(('.xml', '.zip'))):
            return None
        try:
            layer = self.parameterAsRasterLayer(parameters, name, context)
        except QgsProcessingException:
            return None
        project = context.project()
        if layer is None or layer.renderer() is None or project is None or project.mapLayer(layer.id()) is None:
            return None
        return layer.renderer().clone()

    # --- typed parameter helpers ---------------------------------------------------------------------------

    def add(self, parameter, help_text='', advanced=False):
        if help_text:
            parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)
        return parameter

    def add_spectral_input(self, name='INPUT'):
        self.add(QgsProcessingParameterRasterLayer(name, 'EnMAP image (layer, file, product folder or ZIP)'),
                 'An EnMAP L2A image: a raster layer or file, or a product folder, its METADATA.XML or the ZIP '
                 'as delivered by DLR.')

    def add_model(self, name='MODEL'):
        labels = [label for _, label in self._models] or ['(no model installed)']
        ids = [model_id for model_id, _ in self._models]
        default = ids.index(runtime.DEFAULT_MODEL) if runtime.DEFAULT_MODEL in ids else 0  # else the first model
        self.add(QgsProcessingParameterEnum(name, 'Compressor model', options=labels, defaultValue=default),
                 'The compressor. Each label begins with the model id.')
        self.add(QgsProcessingParameterFile(name + '_FILE', 'Custom model package (encoder.onnx)', optional=True,
                                            fileFilter='ONNX model (*.onnx)'),
                 'Use a model package from disk (its encoder.onnx; decoder.onnx must sit beside it) instead of '
                 'a bundled model.', advanced=True)

    def add_quality(self, name='QUALITY'):
        self.add(QgsProcessingParameterNumber(name, 'Quality (1 = smallest file, 10 = best)',
                                              QgsProcessingParameterNumber.Integer, 5, False, 1, 10),
                 'Ten levels for every model; rate and PSNR rise with the level.')

    def add_error_bounds(self):
        """MAX_ERROR, BAND_MAX_ERRORS, RELATIVE_ERROR and RELATIVE_FLOOR (core: bounds.error_bound)."""
        self.add(QgsProcessingParameterNumber('MAX_ERROR', 'Maximum error in DN (0 = lossless)',
                                              QgsProcessingParameterNumber.Integer, None, True, 0),
                 'Guarantee that no valid sample of a coded band is off by more than this many DN (0: lossless, '
                 'all 224 bands bit for bit). With any error bound the base model quality is chosen '
                 'automatically to make the smallest file, and QUALITY is ignored.')
        self.add(QgsProcessingParameterString('BAND_MAX_ERRORS', 'Maximum error per band (DN, list or CSV)',
                                              optional=True),
                 'A limit for each EnMAP band: 224 integers in band-number order separated by commas, or the path '
                 'of a CSV file with rows "band,bound" (band number 1-224, one row per band). Every band is then '
                 'coded. With MAX_ERROR too, each band gets the smaller limit.', advanced=True)
        self.add(QgsProcessingParameterNumber('RELATIVE_ERROR', 'Maximum relative error (0.01 = 1 %)',
                                              QgsProcessingParameterNumber.Double, None, True, 0.0, 1.0),
                 'Guarantee |error| <= this fraction of |value| (0.01 = 1 %, from 0.0001 to 1), but never less '
                 'than RELATIVE_FLOOR DN. Together with MAX_ERROR or BAND_MAX_ERRORS both limits hold.',
                 advanced=True)
        self.add(QgsProcessingParameterNumber('RELATIVE_FLOOR', 'Relative bound allows at least (DN)',
                                              QgsProcessingParameterNumber.Integer, None, True, 0),
                 'The relative bound allows at least this many DN, however small the value (default 0).',
                 advanced=True)

    def error_bound_args(self, parameters, context=None):
        """The error-bound keyword arguments of core compress/evaluate, checked (InputError when invalid)."""
        from ..core.bounds import error_bound

        args = {'max_error': raw_value(parameters, 'MAX_ERROR', context),
                'band_max_errors': raw_value(parameters, 'BAND_MAX_ERRORS', context),
                'relative_error': raw_value(parameters, 'RELATIVE_ERROR', context),
                'relative_floor': raw_value(parameters, 'RELATIVE_FLOOR', context)}
        args = {key: None if value in (None, '') else value for key, value in args.items()}
        return args, error_bound(**args) is not None

    def quality_arg(self, parameters, context):
        """QUALITY as the user gave it, checked by the core (InputError naming the value): parameterAsInt read
        nan as -2147483648 and rounded 5.5 to 6. A value from an expression (the modeler) is QGIS's integer."""
        from ..core.codec import checked_quality

        raw = raw_value(parameters, 'QUALITY', context)
        if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) and raw != '':
            return checked_quality(raw)
        return checked_quality(self.parameterAsInt(parameters, 'QUALITY', context))

    def add_device(self, name='DEVICE'):
        self.add(QgsProcessingParameterEnum(name, 'Device', options=list(DEVICE_LABELS), defaultValue=0),
                 'auto uses CUDA when onnxruntime-gpu and a GPU really work, else the CPU; cuda fails clearly '
                 'when no GPU is usable.')

    def add_code_all_bands(self):
        self.add_flag('CODE_ALL_BANDS', 'Code all bands (also the 22 water-vapour bands)',
                      help_text='Also keep the 22 water-vapour bands (coarsely quantised, larger file). Off: they '
                                'come back as nodata, as in HySpecNet-11k. Evaluate measures the HySpecNet bands '
                                'either way; its rate counts every byte of the file.')

    def add_flag(self, name, label, default=False, help_text='', advanced=True):
        self.add(QgsProcessingParameterBoolean(name, label, defaultValue=default), help_text, advanced)

    def input_source(self, parameters, context, name='INPUT'):
        """The input as a path the core can open: a layer's source, or the path string as given."""
        value = parameters.get(name)
        if is_product_path(value):
            return value
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is not None:
            if layer.providerType() != 'gdal':  # (its source is a URI: "does not exist" misled)
                raise QgsProcessingException(f'The layer {layer.name()} is not read from a file (its provider is '
                                             f'{layer.providerType()}); export it as a GeoTIFF first.')
            return layer.source()
        if isinstance(value, str) and value:
            return value
        raise QgsProcessingException('No input image given.')

    def model_id(self, parameters, context, name='MODEL'):
        custom = self.parameterAsFile(parameters, name + '_FILE', context)
        if custom:
            return custom
        if not self._models:
            raise QgsProcessingException('No compression model is installed.')
        index = self.parameterAsEnum(parameters, name, context)
        return self._models[min(index, len(self._models) - 1)][0]

    def device(self, parameters, context, name='DEVICE'):
        return runtime.DEVICES[self.parameterAsEnum(parameters, name, context)]


def raw_value(parameters, name, context=None):
    """A parameter's value as given, a QgsProperty (processing.run, a model run from Python) evaluated first:
    the core's checks name the value, which parameterAs...() would have changed (nan, 5.5)."""
    value = parameters.get(name)
    if isinstance(value, QgsProperty):
        scope = context.expressionContext() if context is not None else QgsExpressionContext()
        value, _ok = value.value(scope, None)
    return value


def progress_hooks(feedback):
    """The core's progress, label ("tile 37 of 64") and cancel hooks on a Processing feedback."""
    return {'progress': Progress(1, feedback.setProgress, describe=feedback.setProgressText),
            'is_cancelled': feedback.isCanceled}
