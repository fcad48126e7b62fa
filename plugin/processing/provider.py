"""The Processing provider `enmapcompress`."""
from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

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
        return ['tif', 'tiff']  # the algorithms write GeoTIFF (outputs.check_geotiff_name)

