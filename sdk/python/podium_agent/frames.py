"""NDJSON frame I/O: a locked writer for fd 3 and a reader thread for stdin.

Only builtin modules here (posix, _thread, time) to keep start-up short. stdin is read with
posix.read rather than sys.stdin: a thread blocked inside a BufferedReader holds its lock, which
makes interpreter shutdown abort.
"""

from __future__ import annotations

import _thread
import posix
import time

from .json_value import decode, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from .json_value import JsonObject

FRAME_FD = 3
_MIN_READ = 64 * 1024
_MAX_READ = 4 * 1024 * 1024
_BATCH = 64 * 1024
_QUIET_S = 0.001
_BATCH_S = 0.005


def _utf8(text: str) -> bytes:
    # Lone surrogates (only possible inside JSON strings) become \udXXX escapes: valid JSON + UTF-8.
    return text.encode("utf-8", "backslashreplace")


class FrameChannelClosed(Exception):
    """The host closed fd 3: nobody is listening any more."""


class FrameWriter:
    """Writes whole lines to a file descriptor. Thread-safe; frames never interleave.

    Events (`write_event`, what ctx.send writes) are batched when they come fast: an event after a
    quiet moment (nothing written for _QUIET_S) goes out at once; one that follows another closely
    waits, at most _BATCH_S (a flusher thread), until _BATCH bytes gathered, or until any other
    frame (turn_done, state_patch, log, ...) is written, which writes the waiting events first. A
    loop that sends thousands of events costs a write per 64 KiB instead of one per event; a turn's
    last events go out with its turn_done.
    """

    def __init__(self, fd: int = FRAME_FD) -> None:
        self._fd = fd
        self._lock = _thread.allocate_lock()
        self._pending: list[str] = []
        self._pending_size = 0
        self._last_write = 0.0
        self._scheduled = False
        self._wake: _thread.LockType | None = None  # the flusher thread's lock, held while it has nothing to do

    def write(self, frame: Mapping[str, object]) -> None:
        self.write_text(encode(frame))

    def write_text(self, text: str) -> None:
        """Writes pre-serialized JSON text (one object, no newline) as one line."""
        self.write_parts((text, "\n"))

    def write_event(self, frame: Mapping[str, object]) -> None:
        """Writes an event frame, batched with the events around it (see the class)."""
        text = encode(frame)
        with self._lock:
            now = time.monotonic()
            if not self._pending and now - self._last_write >= _QUIET_S:
                self._last_write = now
                self._write_all(_utf8(text + "\n"))
                return
            self._pending.append(text)
            self._pending_size += len(text) + 1
            if self._pending_size >= _BATCH:
                self._flush_locked()
            elif not self._scheduled:
                self._scheduled = True
                if self._wake is None:
                    self._wake = _thread.allocate_lock()
                    self._wake.acquire()
                    _thread.start_new_thread(self._flusher, ())
                self._wake.release()

    def flush(self) -> None:
        """Writes the waiting events now."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            self._pending.append("")
            data = _utf8("\n".join(self._pending))
            self._pending = []
            self._pending_size = 0
            self._last_write = time.monotonic()
            self._write_all(data)

    def _flusher(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            wake.acquire()
            time.sleep(_BATCH_S)
            with self._lock:
                self._scheduled = False
                try:
                    self._flush_locked()
                except Exception:  # the host is gone: the next frame the runtime writes says so
                    self._pending = []
                    self._pending_size = 0

    def write_parts(self, parts: Iterable[str]) -> None:
        """Writes str pieces that together form one line (the last ends in "\n") without joining
        them: a 50 MB piece is encoded once and written as it is; small pieces share one write."""
        chunks: list[bytes] = []
        small: list[str] = []
        size = 0
        for part in parts:
            if len(part) >= _BATCH:
                if small:
                    chunks.append(_utf8("".join(small)))
                    small = []
                    size = 0
                chunks.append(_utf8(part))
            else:
                small.append(part)
                size += len(part)
                if size >= _BATCH:
                    chunks.append(_utf8("".join(small)))
                    small = []
                    size = 0
        if small:
            chunks.append(_utf8("".join(small)))
        with self._lock:
            self._flush_locked()  # events written before this frame go first
            self._last_write = time.monotonic()
            for chunk in chunks:
                self._write_all(chunk)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        total = len(data)
        offset = 0
        while offset < total:
            try:
                offset += posix.write(self._fd, view[offset:])
            except BlockingIOError:
                time.sleep(0.002)
            except (BrokenPipeError, ConnectionResetError) as error:
                raise FrameChannelClosed(str(error)) from None
            except OSError as error:
                if error.errno == 9:  # EBADF
                    raise FrameChannelClosed(str(error)) from None
                raise


def _lines(fd: int) -> Iterator[bytes]:
    """Yields the lines (bytes, without '\\n') read from `fd` until EOF."""
    pending: list[bytes] = []
    size = _MIN_READ
    while True:
        try:
            chunk = posix.read(fd, size)
        except BlockingIOError:
            time.sleep(0.002)
            continue
        if not chunk:
            break
        size = min(size * 2, _MAX_READ) if len(chunk) == size else _MIN_READ
        start = 0
        newline = chunk.find(b"\n")
        while newline != -1:
            if pending:
                pending.append(chunk[start:newline])
                yield b"".join(pending)
                pending = []
            else:
                yield chunk[start:newline]
            start = newline + 1
            newline = chunk.find(b"\n", start)
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def start_reader(on_frame: Callable[[JsonObject], None], on_bad_line: Callable[[str], None], on_eof: Callable[[], None], fd: int = 0) -> None:
    """Reads host frames on a thread: on_frame(dict) per frame, on_eof() once at the end.

    Runs beside the handler, so cancel / answer / stop arrive while a turn is running.
    """

    def run() -> None:

        try:
            for line in _lines(fd):
                if not line.strip():
                    continue
                try:
                    frame = decode(line)
                except ValueError as error:
                    on_bad_line(f"host frame is not JSON: {error}")
                    continue
                if type(frame) is not dict or type(frame.get("type")) is not str:
                    on_bad_line("host frame has no type")
                    continue
                try:
                    on_frame(frame)
                except Exception as error:  # one bad frame must not kill the reader
                    on_bad_line(f"host frame {frame.get('type')!r} failed: {error!r}")
        except Exception:
            pass
        finally:
            on_eof()

    _thread.start_new_thread(run, ())
