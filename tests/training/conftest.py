"""Training tests need torch (a development requirement, never the plugin's): without it their modules are not
collected, so each can import torch at the top like any module."""
import importlib.util

NEEDS_TORCH = ('test_checkpoint.py', 'test_export.py', 'test_import.py', 'test_nets.py', 'test_rdnet.py',
               'test_rdnet2.py', 'test_train.py')
collect_ignore = [] if importlib.util.find_spec('torch') and importlib.util.find_spec('onnxruntime') \
    else list(NEEDS_TORCH)
