"""QGIS-free core of EnMAP Compress: input reading, tiling, models, entropy coding, container, metrics.

Nothing in this package imports qgis; onnxruntime, constriction and defusedxml are imported lazily.
"""
