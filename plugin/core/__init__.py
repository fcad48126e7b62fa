"""QGIS-free core of EnMAP Compress: input reading, tiling, models, entropy coding, container, metrics.

Nothing in this package imports qgis; heavy packages (onnxruntime, constriction) are imported lazily.
"""
