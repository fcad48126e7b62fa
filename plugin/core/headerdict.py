"""The preset DEFLATE dictionaries of .ehc headers and indexes (docs/format.md, "The .ehc container"): DICTIONARY
of 2.x files, DICTIONARY_3 of 3.x files (the compact header: its keys, values and typical band tables).

A JSON header of a small file is mostly key names and common values; DEFLATE with a preset dictionary that holds
them codes each as a short back-reference, so a 32 x 32 px file's header shrinks from about 760 to about 150 bytes.
A dictionary is part of the format: it never changes within its container major version (a test pins each
sha256). It is only a compression aid: any JSON object still round-trips, typical ones just get smaller.
"""

_ALTERNATIVES = (
    '"dtype":"float32","nodata":null,"nodata":-32768.0,"crs":"","crs":"EPSG:326","crs":"EPSG:327","crs":"EPSG:4326",'
    '"band_order":"detector","canonical_index":"detector","band_names":["band 1",'
    '"model_id":"pca","model_kind":"pixel","model_id":"cae1d","model_id":"hycot","model_id":"rdnet2",'
    '"extra_bands":[126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,160,161,162,163,164,165,166],'
    '"max_error":0,"radiometry":"band-gains","error_bound":{"max_error":null,"band_max_errors":null,'
    '"relative_error":null,"relative_floor":0},"requested":"cuda","used":"cuda","provider":"CUDAExecutionProvider",'
    '"platform":"Windows AMD64","platform":"Darwin arm64","platform":"Darwin x86_64","platform":"Linux aarch64",'
)
_HEADER = (
    '{"format":"ehc","raster":{"width":1200,"height":1200,"band_count":224,"dtype":"int16","nodata":-32768,'
    '"crs":"EPSG:32633","geotransform":[366015.0,30.0,0.0,5809965.0,0.0,-30.0],"band_order":"wavelength",'
    '"canonical_index":"identity","wavelengths_delta":"1AAAAAAAAAAAAAAAA","fwhm_delta":"0AAAAAAAAAAAAAAAAAAAAAAAAA",'
    '"band_names":0,"gains":0.0001,"offsets":0.0,"dead_bands":[],'
    '"product_name":"ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z","fill":NaN},'
    '"codec":{"model_id":"rdnet","model_sha256":"0","model_kind":"spatial","quality":5,"step":0.0,"tile_size":256,'
    '"band_set":"hyspecnet202","extra_bands":[],"extra_step_dn":1,"max_error":null,'
    '"entropy_coder":"constriction-ans-v1","model_path":""},'
    '"device":{"requested":"auto","used":"cpu","provider":"CPUExecutionProvider","threads":2},'
    '"software":{"enmap_compress":"0.2.0","python":"3.11.2","numpy":"1.26.4","platform":"Linux x86_64",'
    '"onnxruntime":"1.17.0"},"created":"2026-12-01T12:00:00Z"}'
)
_INDEX = (
    '{"chunks":[{"offset":1000,"length":10000,"crc32":1000000000,"meta":{"x":0,"y":0,"w":256,"h":256}},'
    '{"offset":1000,"length":10000,"crc32":1000000000,"meta":{"x":256,"y":0,"w":256,"h":256}}],'
    '"blobs":{},"footer":{"valid_pixels":1024}}'
)
DICTIONARY = (_ALTERNATIVES + _HEADER + _INDEX).encode('ascii')

# 3.x: the compact header (no step, a short model sha256, device without threads) and the band tables it stores most
# often: a table equal to the standard one (a long run of A), wavelengths as packed differences ('2s').
_ALTERNATIVES_3 = (
    '"dtype":"int16","nodata":null,"crs":"","crs":"EPSG:4326","crs":"EPSG:327","band_order":"wavelength",'
    '"canonical_index":"identity","band_names":["band 1","model_id":"pca","model_kind":"pixel","model_id":"cae1d",'
    '"model_id":"hycot","model_id":"sscnet","model_id":"rdnet2","model_id":"cae3d","tile_size":128,'
    '"extra_bands":[126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,160,161,162,163,164,165,166],'
    '"max_error":0,"radiometry":"band-gains","error_bound":{"max_error":null,"band_max_errors":null,'
    '"relative_error":null,"relative_floor":0},"extra_coder":"spectral-v1","residual_coder":"predicted-v2",'
    '"residual_coder":"plain-v2","used":"cuda","provider":"CUDAExecutionProvider","platform":"Windows AMD64",'
    '"platform":"Darwin arm64","platform":"Darwin x86_64","platform":"Linux aarch64","fill":NaN,'
    '"product_name":"ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z",'
)
_HEADER_3 = (
    '{"format":"ehc","raster":{"width":1200,"height":1200,"band_count":224,"dtype":"float32","nodata":-32768.0,'
    '"crs":"EPSG:32633","geotransform":[366015,30,0,5809965,0,-30],"band_order":"detector",'
    '"canonical_index":"detector","wavelengths_delta":"2sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",'
    '"fwhm_delta":"05' + 'A' * 224 + '","band_names":0,"gains":0.0001,"offsets":0.0,"dead_bands":[],'
    '"product_name":null},"codec":{"model_id":"rdnet","model_sha256":"0","model_kind":"spatial","quality":5,'
    '"tile_size":256,"band_set":"hyspecnet202","extra_bands":[],"max_error":null,"entropy_coder":"constriction-ans-v1",'
    '"latent_coder":"context-v1"},"device":{"used":"cpu","provider":"CPUExecutionProvider"},'
    '"software":{"enmap_compress":"0.4.0","python":"3.11.2","numpy":"1.26.4","platform":"Linux x86_64",'
    '"onnxruntime":"1.17.0"},"created":"2026-12-01T12:00:00Z"}'
)
DICTIONARY_3 = (_ALTERNATIVES_3 + _HEADER_3 + _INDEX).encode('ascii')
DICTIONARIES = {2: DICTIONARY, 3: DICTIONARY_3}  # by container major version (1.x files are plain zlib streams)
