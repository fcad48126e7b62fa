"""Where the plugin's own files live (works whatever the plugin folder is called)."""
import os

PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESOURCES_DIR = os.path.join(PLUGIN_ROOT, 'resources')
MODELS_DIR = os.path.join(PLUGIN_ROOT, 'models')


def resource_path(name):
    return os.path.join(RESOURCES_DIR, name)
