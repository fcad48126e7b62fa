"""EnMAP Compress: the plugin package (QGIS glue on top of the QGIS-free `core`)."""
import configparser
import os


def _read_version():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'metadata.txt'),
                encoding='utf-8')
    return parser.get('general', 'version', fallback='0')


__version__ = _read_version()
