"""The live-event log: JSON lines, durable before an append returns, without journal stalls.

Appending to a file and calling ``fdatasync`` changes the file's size, so every call commits the
filesystem journal, and on ext4 (``data=ordered``) that commit waits for everybody's dirty data:
in two runs on this machine such a sync took 6-87 ms at p99 and up to 342 ms. Overwriting
blocks that already exist needs no metadata, so ``fdatasync`` only flushes those blocks:
0.8-1.3 ms at p99 in the same runs (``bench/eventlog.py``, ``docs/benchmarks.md``). Databases
do the same with their write-ahead logs: PostgreSQL fills each WAL segment with zeros first.

So the log is a series of **segments** ``events-000001.jsonl``, ``events-000002.jsonl``, ...,
each created full of NUL bytes (``segment_bytes``, default 16 MB) and synced before use. Records
are written in place, one JSON object per line, from the start of a segment; the content of a
segment ends at its first NUL byte (JSON text never contains one). When a batch does not fit, it
goes to the next segment, which a background thread prepares while the current one fills.

A crash can leave an unacknowledged batch partly on disk: a torn last line, or stray bytes after
a gap of NULs. Readers stop at the first line that is not complete JSON; a writer, when it
opens the log, clears everything after the last complete line (:meth:`EventLog.open`). Events
keep their keys, so a client that retries an unacknowledged batch creates no duplicates.
An ``events.jsonl`` left by earlier versions (plain appends) is read first.

**Several writers** (``shared=True``: the service's worker processes, docs/scaling.md): each holds
the writer lock shared (so a single writer is refused while they run, and they while it runs),
and every append takes ``.append.lock`` exclusively, finds the log's current end (another process
may have written or started a segment since) and writes there. Segments are made under a name of
their own and linked into place only if absent, so two writers never replace each other's.
Positions in the log are **marks** ``(segment, offset)``; :meth:`EventLog.write_marked` says where
a batch starts and ends, :meth:`EventLog.read_between` reads what others wrote in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from cfxlib.core.errors import UserError
from cfxlib.core.outputs import fsync_dir

SEGMENT_BYTES = 16 << 20
LEGACY_FILE = "events.jsonl"
CHECKPOINT_FILE = "checkpoint.json"
_SEGMENT = re.compile(r"events-(\d{6})\.jsonl")
_ZEROS = bytes(1 << 20)


def _used_from(path: Path, start: int, chunk: int = 1 << 16) -> int:
    """Bytes of complete records in ``path`` from ``start`` (read up to the first NUL only)."""
    parts: list[bytes] = []
    with open(path, "rb") as fh:
        fh.seek(start)
        while True:
            data = fh.read(chunk)
            parts.append(data)
            if not data or b"\0" in data:
                break
    return _content(b"".join(parts))[1]


class EventLogBusy(UserError):
    """Another process holds the log's writer lock."""


def _content(data: bytes) -> tuple[list[dict], int, bool]:
    """(records, bytes they span, clean) of a segment's bytes. ``clean`` is False when something
    other than NULs follows the last complete record (a torn write)."""
    end = data.find(b"\0")
    text = data if end < 0 else data[:end]
    records, used = [], 0
    for line in text.split(b"\n")[:-1]:  # the part after the last newline is not a complete line
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        used += len(line) + 1
    tail = data[used:]
    return records, used, not tail.strip(b"\0")


class EventLog:
    """Durable JSON-lines log of accepted events in a folder (see the module documentation).

    Reading needs nothing else; writing starts with :meth:`open` (recovery and the first
    segment). Then :meth:`append`, or :meth:`write` and later :meth:`sync`, from any thread:
    the service writes and scores a batch in order under its lock, and waits for the disk
    outside it, so one slow flush does not hold up the next batch's scoring."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES, shared: bool = False):
        self.folder = Path(folder)
        self.segment_bytes = segment_bytes
        self.shared = shared
        self._append_fd: int | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._number = 0  # current segment
        self._size = 0  # its size in bytes
        self._pos = 0  # where its next record goes
        self._preparing: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._sync_lock = threading.Lock()
        self._written = 0  # bytes written by this writer (a position for sync)
        self._synced = 0  # of which on disk

    # -- reading
    def segments(self) -> list[Path]:
        """The segment files, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _SEGMENT.fullmatch(p.name))]
        return [p for _, p in sorted(found)]

    def _sources(self) -> Iterator[Path]:
        legacy = self.folder / LEGACY_FILE
        if legacy.is_file():
            yield legacy
        yield from self.segments()

    def read(self) -> list[dict]:
        """Every stored event, in the order accepted (a torn tail after a crash is left out)."""
        out: list[dict] = []
        for path in self._sources():
            out.extend(_content(path.read_bytes())[0])  # up to a torn tail: it was never acknowledged
        return out

    def _numbered(self) -> Iterator[tuple[int, Path]]:
        """(number, path) of every source, oldest first; the legacy file is number 0."""
        legacy = self.folder / LEGACY_FILE
        if legacy.is_file():
            yield 0, legacy
        for path in self.segments():
            yield int(_SEGMENT.fullmatch(path.name).group(1)), path

    def read_since(self, mark: dict | None = None) -> tuple[list[dict], dict]:
        """Events stored after ``mark`` and the mark of where they end.

        A mark is ``{"segment": n, "offset": bytes}``: a place in the log (``None``: its start).
        Segments before the mark's are not read at all."""
        seg, offset = (mark or {}).get("segment", -1), (mark or {}).get("offset", 0)
        out: list[dict] = []
        end = {"segment": seg, "offset": offset}
        for number, path in self._numbered():
            if number < seg:
                continue
            start = offset if number == seg else 0
            with open(path, "rb") as fh:
                fh.seek(start)
                records, used, _ = _content(fh.read())
            out.extend(records)
            if used or number == seg or end["segment"] < 0:  # not past the content into an empty segment
                end = {"segment": number, "offset": start + used}
        return out, end

    def read_between(self, start: tuple[int, int] | None, end: tuple[int, int]) -> list[dict]:
        """Events from mark ``start`` (``None``: the log's start) up to mark ``end``."""
        out: list[dict] = []
        seg, offset = start or (-1, 0)
        for number, path in self._numbered():
            if number < seg or number > end[0]:
                continue
            first = offset if number == seg else 0
            last = end[1] if number == end[0] else None
            with open(path, "rb") as fh:
                fh.seek(first)
                data = fh.read() if last is None else fh.read(max(0, last - first))
            out.extend(_content(data if last is None else data + b"\0")[0])
        return out

    def end_mark(self, since: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """The mark where the log's content ends now (``None``: no segment yet). With ``since``
        (a mark inside the content), segments before it are not looked at and its own is read
        from there only, in chunks, up to the first NUL: an append costs a few kilobytes."""
        numbered = [(n, p) for n, p in self._numbered() if since is None or n >= since[0]]
        if not numbered:
            return since
        for number, path in reversed(numbered):
            start = since[1] if since is not None and number == since[0] else 0
            used = _used_from(path, start)
            if used or (since is not None and number == since[0]) or number == numbered[0][0]:
                return (number, start + used)
        return since

    def read_checkpointed(self) -> tuple[list[dict], dict]:
        """Events not yet folded into an ingest (after :meth:`checkpoint`), and where they end."""
        return self.read_since(self.checkpoint_mark())

    def checkpoint_mark(self) -> dict | None:
        path = self.folder / CHECKPOINT_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def checkpoint(self, mark: dict) -> None:
        """Record that every event up to ``mark`` is folded into the warehouse (and its archive);
        then remove the files that hold nothing after it (never the one being written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(mark), encoding="utf-8")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(self.folder)
        for number, source in list(self._numbered()):
            if number < mark["segment"]:
                with contextlib.suppress(FileNotFoundError):
                    source.unlink()

    def has_events(self) -> bool:
        """Whether any event is stored (reads the first bytes of each file only)."""
        for path in self._sources():
            with open(path, "rb") as fh:
                if fh.read(1) not in (b"", b"\0"):
                    return True
        return False

    # -- writing
    def open(self) -> None:
        """Find where the next record goes, clear a torn tail left by a crash, and make sure the
        current segment exists (and the next is being prepared). Idempotent."""
        with self._lock:
            if self._fd is not None:
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer_lock()
            if self.shared:
                self._append_fd = os.open(self.folder / ".append.lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._append_fd, fcntl.LOCK_EX)  # recovery below must not race an append
            try:
                self._recover()
            finally:
                if self.shared:
                    fcntl.flock(self._append_fd, fcntl.LOCK_UN)

    def _recover(self) -> None:
        number, pos = 1, 0
        for path in reversed(self.segments()):  # newest first, down to the one in use
            n = int(_SEGMENT.fullmatch(path.name).group(1))
            data = path.read_bytes()
            _, used, clean = _content(data)
            if not clean:  # nothing written after the last complete record was acknowledged
                self._clear_after(path, data, used)
            if used:
                number, pos = n, used
                break
        self._use(number, pos)

    def append(self, events: list[dict]) -> None:
        """Write ``events`` and return once they are on disk."""
        self.sync(self.write(events))

    def write(self, events: list[dict]) -> int:
        """Write ``events`` to the log (the kernel's page cache: they survive a crash of this
        process, not of the machine) and return their end position for :meth:`sync`."""
        return self.write_marked(events)[0]

    def write_marked(self, events: list[dict]) -> tuple[int, tuple[int, int], tuple[int, int]]:
        """:meth:`write`, returning also the marks where the batch starts and ends in the log."""
        data = "".join(json.dumps(e, default=str) + "\n" for e in events).encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise RuntimeError("EventLog.open() first")
            with self._appending():
                if self._pos + len(data) > self._size:
                    self._use(self._number + 1, 0, at_least=len(data))
                start = (self._number, self._pos)
                os.pwrite(self._fd, data, self._pos)
                self._pos += len(data)
            self._written += len(data)
            return self._written, start, (self._number, self._pos)

    @contextlib.contextmanager
    def _appending(self) -> Iterator[None]:
        """Shared mode: hold ``.append.lock`` and move to the log's current end first."""
        if not self.shared:
            yield
            return
        fcntl.flock(self._append_fd, fcntl.LOCK_EX)
        try:
            end = self.end_mark((self._number, self._pos))
            if end is not None and end[0] != self._number:
                self._use(end[0], end[1])
            elif end is not None:
                self._pos = end[1]
            yield
        finally:
            fcntl.flock(self._append_fd, fcntl.LOCK_UN)

    def sync(self, position: int) -> None:
        """Return once everything written up to ``position`` is on disk (``fdatasync``: data
        blocks only, as the size and the allocation do not change). One sync covers every
        write before it, so concurrent callers share it (group commit)."""
        if self._synced >= position:
            return
        with self._lock:
            fd, target = os.dup(self._fd), self._written  # a dup: the writer may move to a new segment
        try:
            with self._sync_lock:
                if self._synced >= position:
                    return
                os.fdatasync(fd)
                with self._lock:
                    self._synced = max(self._synced, target)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Flush what was written, release the files and the writer lock."""
        with self._lock:
            if self._fd is not None:
                os.fdatasync(self._fd)
                self._synced = self._written
            for fd in (self._fd, self._lock_fd, self._append_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = self._append_fd = None
        if self._preparing is not None:
            self._preparing.join()

    def _writer_lock(self) -> None:
        """One writer per folder: records are written in place, so two would overwrite each other."""
        fd = os.open(self.folder / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EventLogBusy(
                f"another process is writing live events to {self.folder} (is a second `cfx serve` running "
                "on this CFX_HOME?); stop it first"
            ) from None
        self._lock_fd = fd

    # -- segments
    def _path(self, number: int) -> Path:
        return self.folder / f"events-{number:06d}.jsonl"

    def _use(self, number: int, pos: int, at_least: int = 0) -> None:
        """Switch to segment ``number`` (created full of zeros and synced if need be)."""
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        path = self._path(number)
        if not path.exists() or path.stat().st_size < max(at_least, 1):
            self._create(number, max(self.segment_bytes, at_least))
        if self._fd is not None:
            os.fdatasync(self._fd)  # the segment is left: everything written so far is on disk
            os.close(self._fd)
            self._synced = self._written
        self._fd = os.open(path, os.O_RDWR)
        self._number, self._pos, self._size = number, pos, os.fstat(self._fd).st_size
        if not self._path(number + 1).exists():  # ready before this one fills up
            self._preparing = threading.Thread(target=self._prepare, args=(number + 1,), daemon=True)
            self._preparing.start()

    def _prepare(self, number: int) -> None:
        with contextlib.suppress(OSError):  # the writer creates it itself when it gets there
            self._create(number, self.segment_bytes)

    def _create(self, number: int, size: int) -> None:
        """Write segment ``number``: ``size`` NUL bytes, synced, under a temporary name first so
        a reader never sees a half-made segment."""
        path = self._path(number)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            left = size
            while left:
                left -= os.write(fd, _ZEROS[: min(left, len(_ZEROS))])
            os.fsync(fd)
        finally:
            os.close(fd)
        try:  # linked only if absent: another writer's segment, maybe already written to, stays
            os.link(tmp, path)
        except FileExistsError:
            if path.stat().st_size < size:  # too small for this batch and empty: ours replaces it
                with open(path, "rb") as fh:
                    empty = not fh.read(1).strip(b"\0")
                if empty:
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(self.folder)

    @staticmethod
    def _clear_after(path: Path, data: bytes, pos: int) -> None:
        """Overwrite with NULs whatever follows ``pos`` in ``path`` (holding ``data``) up to its
        last non-NUL byte."""
        end = len(data.rstrip(b"\0"))
        if end <= pos:
            return
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, bytes(end - pos), pos)
            os.fsync(fd)
        finally:
            os.close(fd)
