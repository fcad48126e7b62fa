"""The Processing algorithms. Ids and parameter names are stable: scripts and models depend on them."""
from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
)

from ..core.bands import DN_PEAK, N_BANDS, N_HYSPECNET
from .base import EnmapAlgorithm, progress_hooks

RATE_HELP = (f'bpppb = bits of the compressed file / (valid pixels x {N_HYSPECNET} bands), measured from the bytes '
             'on disk.')


class CompressAlgorithm(EnmapAlgorithm):
    NAME = 'compress'
    LABEL = 'Compress EnMAP image'
    HELP = ('Compresses an EnMAP L2A image into an .ehc file with the chosen model and quality. The '
            f'{N_HYSPECNET} HySpecNet bands are coded; the {N_BANDS - N_HYSPECNET} water-vapour bands and dead bands '
            'come back as nodata unless "Code all bands" is set. ' + RATE_HELP)
    ICON = 'compress.svg'

    def define(self):
        self.add_spectral_input()
        self.add_model()
        self.add_quality()
        self.add_device()
        self.add_code_all_bands()
        self.add_error_bounds()
        self.add(QgsProcessingParameterFileDestination('OUTPUT', 'Compressed file', 'EnMAP Compress (*.ehc)'),
                 'Destination .ehc file.')
        self.addOutput(QgsProcessingOutputNumber('BPPPB', 'Rate (bits per pixel per band)'))
        self.addOutput(QgsProcessingOutputNumber('COMPRESSION_RATIO', 'Compression ratio against int16'))

    def execute(self, parameters, context, feedback):
        from ..core.codec import compress

        output = self.parameterAsFileOutput(parameters, 'OUTPUT', context)
        bounds, bounded = self.error_bound_args(parameters, context)
        quality = None if bounded else self.quality_arg(parameters, context)
        result = compress(self.input_source(parameters, context), output, self.model_id(parameters, context),
                          quality, self.device(parameters, context),
                          code_all_bands=self.parameterAsBool(parameters, 'CODE_ALL_BANDS', context),
                          **bounds, **progress_hooks(feedback))
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(f'{result.file_bytes:,} bytes, {result.bpppb:.4f} bpppb, ratio '
                          f'{result.compression_ratio:.1f}:1, device {result.device} ({result.provider}), '
                          f'{result.seconds:.1f} s')
        return {'OUTPUT': output, 'BPPPB': result.bpppb, 'COMPRESSION_RATIO': result.compression_ratio}


class DecompressAlgorithm(EnmapAlgorithm):
    NAME = 'decompress'
    LABEL = 'Decompress EnMAP image'
    HELP = ('Decompresses an .ehc file to a GeoTIFF with the original band count and order, data type, nodata, '
            'georeferencing, wavelengths and FWHM. The model the file was made with must be installed.')
    ICON = 'decompress.svg'
    STYLES = {'OUTPUT': 'true_colour'}

    def define(self):
        self.add(QgsProcessingParameterFile('INPUT', 'Compressed file (.ehc)', extension='ehc'),
                 'An .ehc file written by "Compress EnMAP image".')
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination('OUTPUT', 'Reconstructed image'),
                 'Destination GeoTIFF.')

    def execute(self, parameters, context, feedback):
        from ..core.codec import decompress

        output = self.parameterAsOutputLayer(parameters, 'OUTPUT', context)
        result = decompress(self.parameterAsFile(parameters, 'INPUT', context), output,
                            self.device(parameters, context), **progress_hooks(feedback))
        feedback.pushInfo(f'decoded on {result.device} ({result.provider}) in {result.seconds:.1f} s')
        return {'OUTPUT': output}


class EvaluateAlgorithm(EnmapAlgorithm):
    NAME = 'evaluate'
    LABEL = 'Evaluate compression'
    HELP = ('Compresses and decompresses an EnMAP image and measures what compression did: PSNR (HySpecNet '
            f'convention, {N_HYSPECNET} bands, peak {DN_PEAK:.0f} DN), mean spectral angle, SSIM, maximum absolute '
            'error and the real '
            'rate. Writes the reconstruction, an error raster (RMSE in DN, spectral angle in degrees, maximum '
            'absolute error per pixel) and optionally the .ehc file and an HTML report. ' + RATE_HELP)
    OUTPUTS = (('PSNR', 'PSNR (dB)'), ('SA', 'Mean spectral angle (degrees)'), ('SSIM', 'SSIM'),
               ('MAX_ABS_ERROR', 'Maximum absolute error (DN)'), ('BPPPB', 'Rate (bits per pixel per band)'),
               ('COMPRESSION_RATIO', 'Compression ratio against int16'))
    GROUP = 'Evaluation'
    ICON = 'evaluate.svg'
    STYLES = {'RECONSTRUCTED': 'like_input', 'ERROR': 'error'}

    def define(self):
        self.add_spectral_input()
        self.add_model()
        self.add_quality()
        self.add_device()
        self.add_code_all_bands()
        self.add_error_bounds()
        self.add(QgsProcessingParameterFileDestination('COMPRESSED', 'Compressed file', 'EnMAP Compress (*.ehc)',
                                                       optional=True, createByDefault=False),
                 'Keep the .ehc file here (optional).')
        self.add(QgsProcessingParameterRasterDestination('RECONSTRUCTED', 'Reconstructed image'),
                 'The decompressed image (GeoTIFF), loaded with the same RGB bands and stretch as the input layer.')
        self.add(QgsProcessingParameterRasterDestination('ERROR', 'Error image'),
                 'Bands: rmse_dn, spectral_angle_deg, max_abs_error_dn; loaded with a colour ramp on rmse_dn.')
        self.add(QgsProcessingParameterFileDestination('REPORT', 'Report', 'HTML files (*.html)', optional=True,
                                                       createByDefault=False),
                 'A self-contained HTML report: metrics, sample spectra, error per band, error histogram and a '
                 'rate-distortion chart against the bundled models (optional).')
        for name, label in self.OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def execute(self, parameters, context, feedback):
        from ..core.evaluate import evaluate

        reconstructed = self.parameterAsOutputLayer(parameters, 'RECONSTRUCTED', context)
        error = self.parameterAsOutputLayer(parameters, 'ERROR', context)
        compressed = self.parameterAsFileOutput(parameters, 'COMPRESSED', context) or None
        report = self.parameterAsFileOutput(parameters, 'REPORT', context) or None
        bounds, bounded = self.error_bound_args(parameters, context)
        quality = None if bounded else self.quality_arg(parameters, context)
        result = evaluate(self.input_source(parameters, context), reconstructed, self.model_id(parameters, context),
                          quality, self.device(parameters, context), compressed=compressed, error=error,
                          report=report, code_all_bands=self.parameterAsBool(parameters, 'CODE_ALL_BANDS', context),
                          **bounds, **progress_hooks(feedback))
        feedback.pushInfo(f'PSNR {result.psnr:.2f} dB, SA {result.sa_deg:.3f}°, {result.bpppb:.4f} bpppb, '
                          f'ratio {result.compression_ratio:.1f}:1, max error {result.max_abs_error_dn:.0f} DN')
        return {'RECONSTRUCTED': reconstructed, 'ERROR': error, 'COMPRESSED': compressed, 'REPORT': report,
                'PSNR': result.psnr, 'SA': result.sa_deg, 'SSIM': result.ssim,
                'MAX_ABS_ERROR': result.max_abs_error_dn, 'BPPPB': result.bpppb,
                'COMPRESSION_RATIO': result.compression_ratio}


def all_algorithms():
    return [CompressAlgorithm(), DecompressAlgorithm(), EvaluateAlgorithm()]
