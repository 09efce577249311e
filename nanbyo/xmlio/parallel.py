"""The check of an import's files in processes of their own, ahead of the writes: while the import writes one
file's documents, the next files are read and checked on the other cores. For the imports that can take minutes (the
background job, the CLI); an upload imported within its web request is checked in the request's own process.

A checker is `python -m nanbyo.xmlio.parallel`, started for the import with a bare environment (no database URL,
no configuration: it needs neither) and spoken to over its standard input and output; an import starts one per core
it may run on (checker_count), and no more than it has uploads. Each checker gets an upload (its bytes, or the path
of a file on disk), runs check.iter_upload on it and sends the FileChecks back, one at a time; it sends an upload's
last FileCheck only when it has nothing else of the upload to do, and is sent its next upload only then, so no
process ever waits on another with a full pipe, and a large ZIP is never held whole in any. The uploads go to the
checkers in turn and their FileChecks come back in the uploads' order. Form definitions travel as their code and
version (the same catalogue object on arrival), everything else as it is: the caller gets what the check in its own
process would give.
"""
import copyreg
import fcntl
import gc
import io
import os
import pickle
import select
import struct
import subprocess
import sys
import traceback
from collections import deque
from contextlib import suppress
from itertools import islice
from pathlib import Path

from nanbyo import formdefs
from nanbyo.xmlio import check

ROOT = Path(__file__).resolve().parents[2]
_LENGTH = struct.Struct("!Q")
PIPE_BYTES = 1024 * 1024  # Linux's default pipe-max-size
MAX_CHECKERS = 4  # past the cores a server has for its imports, more checkers only take memory
# What the checker may need of the parent's environment: the form definitions it checks by, the locale, the time zone.
_ENVIRONMENT = ("NANBYO_FORMDEFS_DIR", "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")


class CheckerFailed(RuntimeError):
    """The checking process failed or ended before it finished."""


class _Pickler(pickle.Pickler):
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[formdefs.FormDefinition] = lambda definition: (formdefs.definition,
                                                                  (definition.code, definition.version))


def _send(stream, value):
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    stream.write(_LENGTH.pack(buffer.tell()))
    stream.write(buffer.getbuffer())
    stream.flush()


def _read(stream, size) -> bytes:
    """`size` bytes of `stream` (a raw pipe gives what it has: read until there are enough); EOFError at its end."""
    parts, missing = [], size
    while missing:
        part = stream.read(missing)
        if not part:
            raise EOFError
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def _receive(stream):
    size, = _LENGTH.unpack(_read(stream, _LENGTH.size))
    data = _read(stream, size)
    # The collector paused: every object a file's FileChecks make is new and reachable, and collections in the
    # middle of making them only look at them again (about half of the unpickling's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return pickle.loads(data)  # nosec B301 - the parent and its own checker, over their private pipes
    finally:
        if collecting:
            gc.enable()


def _ready(stream) -> bool:
    """Whether the checker has sent something (`stream`: the pipe itself, read unbuffered: nothing waits in a buffer
    of this process that the pipe does not show)."""
    return bool(select.select([stream], [], [], 0)[0])


def main():
    """The checker: (today, diseases), then uploads until None; sends (FileCheck or None, last of its upload) for
    each, or a traceback (a str) when it fails."""
    channel_in, channel_out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but messages goes into the channel
    try:
        today, diseases = _receive(channel_in)
        gc.freeze()  # what the checker has loaded is kept for good: the collector looks only at what each file makes
        while (upload := _receive(channel_in)) is not None:
            name, data = upload
            previous = None  # held back until the next one shows whether it is the upload's last
            for checked in check.iter_upload(name, data, today, diseases):
                if previous is not None:
                    _send(channel_out, (previous, False))
                previous = checked
            _send(channel_out, (previous, True))
    except (EOFError, BrokenPipeError):
        return 1  # the parent went away
    except BaseException:  # noqa: B036 - whatever it is, the parent is told rather than left waiting
        _send(channel_out, traceback.format_exc())
        return 1
    return 0


def _command() -> list[str]:
    return [sys.executable, "-m", "nanbyo.xmlio.parallel"]


def checker_count() -> int:
    """How many checkers an import starts: one per core this process may run on, at most MAX_CHECKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_CHECKERS, cores or 1))


def _start_checker():
    environment = {key: os.environ[key] for key in _ENVIRONMENT if key in os.environ} | {"PYTHONPATH": str(ROOT)}
    checker = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment,
                               cwd=ROOT)  # nosec B603 - no shell: this module, run by this Python
    for pipe in (checker.stdin, checker.stdout):
        _widen(pipe)
    return checker


def _widen(pipe):
    """The pipe made to hold PIPE_BYTES (where the system lets it): an upload or a file's FileChecks goes in at once,
    without the writer waiting, 64 KB at a time, for the reader to be given a core."""
    with suppress(OSError, AttributeError):  # not Linux, or above the system's pipe-max-size
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def iter_checked(uploads, today, diseases, before_waiting=None, checkers=None):
    """The FileChecks of `uploads` ([(name, bytes or path)], may be an iterator, read ahead), in order, as
    check.iter_upload gives them. Each checker has an upload of its own to check while the caller works on the one
    before. before_waiting(), if given, is called when the caller asks for the next FileCheck and it is not there
    yet."""
    uploads = iter(uploads)
    ahead = list(islice(uploads, checkers or checker_count()))
    if not ahead:
        return
    started, turns, finished = [], deque(), False
    try:
        try:
            for upload in ahead:
                checker = _start_checker()
                started.append(checker)
                _send(checker.stdin, (today, diseases))
                _send(checker.stdin, upload)
                turns.append(checker)
            while turns:
                checker = turns[0]
                replies = checker.stdout.raw
                if before_waiting is not None and not _ready(replies):
                    before_waiting()
                message = _receive(replies)
                if isinstance(message, str):
                    raise CheckerFailed(message)
                checked, last = message
                if last:
                    turns.popleft()
                    upload = next(uploads, None)
                    _send(checker.stdin, upload)  # None: the checker stops
                    if upload is not None:
                        turns.append(checker)
                if checked is not None:
                    yield checked
            finished = True
        except (EOFError, BrokenPipeError):
            raise CheckerFailed(f"XMLを検査するプロセスが終了しました（終了コード {_exit_code(checker)}）。") from None
    finally:
        for checker in started:
            with suppress(OSError):  # a checker gone: nothing left to flush to it
                checker.stdin.close()
            if not finished or _exit_code(checker) is None:  # stopped half-way: it may be in a file nobody will read
                checker.kill()
            checker.wait()
            checker.stdout.close()


def _exit_code(checker):
    """The checker's exit code once it has ended (None: still running 5 s on)."""
    try:
        return checker.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


if __name__ == "__main__":
    sys.exit(main())
