"""What the command line prints: results (text or --json), one-line errors and warnings, a progress bar on a terminal.

Results go to stdout; progress, warnings and errors to stderr, so `--json` output stays parseable when piped.
"""
import contextlib
import json
import logging
import math
import os
import re
import sys
import time

PROGRAM = 'enmap-compress'


# C0 and C1 controls (ESC starts the terminal's escape sequences; CR and LF fake lines), bidirectional marks and
# overrides (they reorder what follows), lone surrogates (no terminal encoding holds them)
_UNPRINTABLE = re.compile('[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]')


def printable(text):
    """`text` for a terminal: what _UNPRINTABLE matches as a \\x.. or \\u.... escape, so that text from a file
    (a .ehc header's product name, creation time or software, a CRS name) cannot rewrite the screen, retitle
    the window or print a line of its own."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode('unicode_escape').decode('ascii'), str(text))


def one_line(text):
    """A message on one line (core messages may wrap lists or paths), printable."""
    return printable(' '.join(str(text).split()))


def jsonable(value):
    """JSON-safe copy: non-finite floats become null (JSON has no NaN or Infinity), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, 'item') and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


class ProgressBar:
    """`bar(percent)` redraws at most ten times a second; `detail` adds text such as '12/30 products'."""

    WIDTH = 30

    def __init__(self, label, stream):
        self.label, self.stream = label, stream
        self.started = time.monotonic()
        self._drawn = 0.0
        self._length = 0

    def __call__(self, percent, detail=''):
        now = time.monotonic()
        if now - self._drawn < 0.1 and percent < 100:
            return
        self._drawn = now
        fraction = max(0.0, min(1.0, percent / 100.0))
        filled = int(round(self.WIDTH * fraction))
        elapsed = now - self.started
        left = f' {_clock(elapsed * (1 - fraction) / fraction)} left' if 0.02 < fraction < 1 else ''
        line = f'{self.label} [{"#" * filled}{"." * (self.WIDTH - filled)}] {100 * fraction:3.0f}%{left}'
        if detail:
            line += f'  {detail}'
        self.stream.write('\r' + line.ljust(self._length))
        self.stream.flush()
        self._length = len(line)

    def close(self):
        if self._length:
            self.stream.write('\r' + ' ' * self._length + '\r')
            self.stream.flush()
            self._length = 0


def _clock(seconds):
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}' if seconds >= 3600 else \
        f'{seconds // 60}:{seconds % 60:02d}'


class StdoutLostError(Exception):
    """The result could not be printed: stdout is closed or a broken pipe (`... --json | head -c 10`)."""


class _Discard:
    """A stream for a closed one (started with `>&-`, or a pipe whose reader went away): writes go nowhere."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class Console:
    def __init__(self, as_json=False, quiet=False, stdout=None, stderr=None):
        self.as_json, self.quiet = as_json, quiet
        self.stdout = stdout or sys.stdout or _Discard()  # (sys.stdout is None when the shell closed it)
        self.stderr = stderr or sys.stderr or _Discard()
        self._bar = None

    # -- progress ------------------------------------------------------------------------------------------------
    def progress(self, label):
        """A progress callback (percent[, detail]) for the core, or None when not on a terminal or --quiet."""
        if self.quiet or not _is_terminal(self.stderr):
            return None
        self.end_progress()
        self._bar = ProgressBar(label, self.stderr)
        return self._bar

    def end_progress(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- messages ------------------------------------------------------------------------------------------------
    def warning(self, message):
        if not self.quiet:
            self._line(f'{PROGRAM}: warning: {one_line(message)}')

    def info(self, message):
        """A line of progress text (not a result): stderr, never with --quiet."""
        if not self.quiet:
            self._line(one_line(message))

    def error(self, command, message, hint='', result_printed=False):
        """The one-line error on stderr; with --json also `{"ok": false, "error": ...}` on stdout, unless the
        command already printed its (failed) result there."""
        text = one_line(message) + (f' ({hint})' if hint else '')
        self._line(f'{PROGRAM}: error: {text}')
        if self.as_json and not result_printed:
            with contextlib.suppress(StdoutLostError):  # (said above, on stderr)
                self.result({'command': command, 'ok': False, 'error': text}, '')

    def _line(self, text):
        self.end_progress()
        try:
            self.stderr.write(text + '\n')
            self.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr: nowhere left to tell
            self.stderr = _Discard()

    # -- results -------------------------------------------------------------------------------------------------
    def result(self, data, text):
        """The command's result: `data` as JSON with --json, else `text` (unless --quiet)."""
        self.end_progress()
        try:
            if self.as_json:
                self.stdout.write(json.dumps(jsonable(data), indent=2, allow_nan=False) + '\n')
            elif text and not self.quiet:
                self.stdout.write(_encodable(text.rstrip('\n') + '\n', self.stdout))
            self.stdout.flush()
        except (OSError, ValueError) as exc:  # a broken pipe (EPIPE; EINVAL on Windows), a closed stream
            if self.stdout is sys.stdout:
                _drop_pending(self.stdout)
            self.stdout = _Discard()
            reason = getattr(exc, 'strerror', None) or exc
            raise StdoutLostError(f'the result could not be printed: standard output is closed or its reader '
                                  f'stopped ({reason}); the command itself finished') from None


def _encodable(text, stream):
    """`text` with what `stream`'s encoding lacks as \\x.., \\u.... escapes (as Python's stderr writes it): a stdout
    redirected to a file or a pipe on Windows encodes in the ANSI code page (cp1252), and a file or product name in
    Cyrillic or Chinese raised UnicodeEncodeError there, which lost the result as if stdout were closed."""
    encoding = getattr(stream, 'encoding', None)
    if not encoding:  # (a text stream of its own: it takes any text)
        return text
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode(encoding, 'backslashreplace').decode(encoding)
    except LookupError:  # (an encoding Python does not know: the stream says what it can do)
        pass
    return text


def _drop_pending(stream):
    """Python flushes sys.stdout once more at exit and prints "Exception ignored ... BrokenPipeError" when the
    bytes of the failed write are still buffered: point its file descriptor at the null device (as the Python
    documentation advises for SIGPIPE) so that last flush goes nowhere. Only for a stdout whose reader has gone."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class WarningHandler(logging.Handler):
    """Routes the core's log warnings ('enmap_compress' logger) to the console as one-line warnings."""

    def __init__(self, console):
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record):
        try:
            self.console.warning(record.getMessage())
        except Exception:  # a broken stderr must not turn a warning into a failure
            self.handleError(record)


def key_values(pairs):
    """Aligned 'key: value' lines for the text output, skipping empty values."""
    shown = [(printable(k), printable(v)) for k, v in pairs if v not in (None, '', [])]
    width = max((len(k) for k, _ in shown), default=0)
    return '\n'.join(f'{k + ":":<{width + 1}} {v}' for k, v in shown)
