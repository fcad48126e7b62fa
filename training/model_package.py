"""Writing a model package (encoder.onnx, decoder.onnx, card.md) through the plugin's model contract."""
import copy
import os

from enmap_compress.plugin.core.bands import HYSPECNET202, band_set
from enmap_compress.plugin.core.modelmeta import STANDARD_NORMALISATION


def hyspecnet_input():
    """The metadata fields of a package that codes the HySpecNet band set in the standard reflectance view."""
    return {'band_set': HYSPECNET202, 'input_bands': band_set(HYSPECNET202).count,
            'normalisation': copy.deepcopy(STANDARD_NORMALISATION)}


def write_model_package(folder, encoder, decoder, meta, card):
    """Write encoder.onnx and decoder.onnx (both carrying `meta` as JSON metadata) and card.md.

    `meta` (a dict or a ModelMetadata) goes through the plugin's model contract: what is written is what the plugin
    will read, and a field it would refuse fails here, at export, not in a user's decode.
    """
    import onnx

    from enmap_compress.plugin.core.modelmeta import ModelMetadata

    if not isinstance(meta, ModelMetadata):
        meta = ModelMetadata.from_json(meta, f'metadata of {folder}')
    os.makedirs(folder, exist_ok=True)
    for name, model in (('encoder.onnx', encoder), ('decoder.onnx', decoder)):
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key, entry.value = 'enmap_compress', meta.dumps()
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(folder, name))
    with open(os.path.join(folder, 'card.md'), 'w', encoding='utf-8') as handle:
        handle.write(card)
