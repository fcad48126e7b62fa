"""The Processing provider `enmapcompress`."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..core.outputs import OUTPUT_KINDS
from ..paths import resource_path


class EnmapCompressProvider(QgsProcessingProvider):
    def id(self):
        return 'enmapcompress'

    def name(self):
        return 'EnMAP Compress'

    def longName(self):  # noqa: N802 (QGIS API name)
        return 'EnMAP Compress — hyperspectral compression'

    def icon(self):
        return QIcon(resource_path('icon.svg'))

    def loadAlgorithms(self):  # noqa: N802 (QGIS API name)
        from .algorithms import all_algorithms

        for algorithm in all_algorithms():
            self.addAlgorithm(algorithm)

    def supportsNonFileBasedOutput(self):  # noqa: N802 (QGIS API name)
        return False

    def defaultRasterFileExtension(self):  # noqa: N802 (QGIS API name)
        return 'tif'

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802 (QGIS API name)
        return [suffix[1:] for suffix in OUTPUT_KINDS['geotiff'][0]]  # what the algorithms write (check_named)

