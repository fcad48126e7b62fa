"""Type and range checks of the JSON objects of a .ehc header: a failure is one FormatError naming the file and the
field (validation.py checks the raster part and the index with them, codecheader.py the codec part)."""
import sys

from .bands import N_BANDS
from .errors import FormatError

MAX_TEXT = 4096  # characters of a band name, product name or model id


def field_error(path, field, problem):
    return FormatError(f'{path}: the header field {field} {problem}')


class HeaderFields:
    """The fields of one JSON object, `name` within the header (`codec`, `codec.error_bound`; '' for the top)."""

    def __init__(self, obj, name, path):
        self.path, self.name = path, name
        if not isinstance(obj, dict):
            self.fail('', f'must be an object, not {shown(obj)}')
        self.obj = obj

    def fail(self, key, problem):
        raise field_error(self.path, '.'.join(part for part in (self.name, key) if part), problem)

    def get(self, key, required=True):
        if key not in self.obj:
            if required:
                self.fail(key, 'is missing')
            return None
        return self.obj[key]

    def integer(self, key, low, high, required=True):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not is_int(value) or not low <= value <= high:
            self.fail(key, f'must be an integer from {low} to {high}, not {shown(value)}')
        return value

    def number(self, key, required=True, finite=True):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not is_number(value) or (finite and not is_finite(value)):
            self.fail(key, f'must be a{" finite" if finite else ""} number, not {shown(value)}')
        return value

    def text(self, key, required=True, choices=None, pattern=None):
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.fail(key, f'must be a text of at most {MAX_TEXT} characters, not {shown(value)}')
        if choices is not None and value not in choices:
            self.fail(key, f'must be one of {", ".join(map(repr, choices))}, not {shown(value)}')
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(key, f'is not valid ({shown(value)})')
        return value

    def indices(self, key, length=None, ascending=False):
        """A list of band indices 0..223: `length` of them, or strictly ascending ones."""
        value = self.get(key)
        if not isinstance(value, list) or (length is not None and len(value) != length) or \
                not all(is_int(v) and 0 <= v < N_BANDS for v in value):
            count = f'{length} ' if length is not None else ''
            self.fail(key, f'must be a list of {count}band indices from 0 to {N_BANDS - 1}, not {shown(value)}')
        if ascending and any(b <= a for a, b in zip(value, value[1:])):
            self.fail(key, f'must list each band once, in ascending order, not {shown(value)}')
        return value

    def optional_type(self, key, kind, label):
        value = self.obj.get(key)
        if value is not None and not isinstance(value, kind):
            self.fail(key, f'must be {label}, not {shown(value)}')


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value):
    """A number that is finite as a float: an integer beyond float range is not (math.isfinite and every float
    conversion raise OverflowError on 10 ** 400, which JSON allows)."""
    return is_number(value) and -sys.float_info.max <= value <= sys.float_info.max


def shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'
