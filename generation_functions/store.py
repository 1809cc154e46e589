"""Atomic, content-addressed storage of finished work in OUTPUT.

Every model call is stored under a key made from what determines it (step,
model, rendered prompt, sampling, slot), as one JSON line appended to the step's
log, OUTPUT/calls/<step>/calls.jsonl. A rerun finds the key and makes no
request; a changed document or prompt changes the key and so redoes only what it
changes.

One append per call, not one file: creating a file costs about a millisecond
on ordinary disks, more than everything else the client does for a request,
and it blocks the event loop while it happens. A run killed in the middle of an
append leaves at most one torn last line; it is cut off when the log is next
opened, and any line that does not read back as a whole record counts as
missing, never as done. Other outputs are written to a temporary file and
renamed over the old one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ContextManager, Iterable, Iterator, Optional, TextIO

import orjson

from generation_functions.errors import OutputInUse

try:
    import fcntl
except ImportError:  # Windows: runs are not locked against each other there
    fcntl = None

CALLS_DIR = "calls"
TEMPLATES_DIR = "templates"
LOCK_FILE = ".run.lock"


def describe_os_error(exc: OSError) -> str:
    """A file error in words, for a person: what failed and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return f"a file operation failed ({what}){where}"


def work_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


_TEMPORARY_NUMBERS = itertools.count()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def open_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside path, named uniquely for this process and write (no random
    names, no retries: file creation is the costly part here), and its descriptor."""
    temporary = path.parent / f".tmp-{os.getpid()}-{next(_TEMPORARY_NUMBERS)}"
    try:
        return os.open(temporary, _CREATE, 0o644), temporary
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(temporary, _CREATE, 0o644), temporary


# Exactly the names open_temporary gives: a user's own ".tmp-notes" is never taken for one.
_TEMPORARY_NAME = re.compile(r"\.tmp-(\d+)-\d+")


def remove_stale_temporaries(folders: Iterable[Path]) -> int:
    """Delete the temporaries a killed run left in the folders this program writes to.

    Only those folders, not the tree below them (a nested OUTPUT of another run
    lives there), only names open_temporary makes, and only those of a process
    that is gone: a live one (evaluate.py writing to the same folder) is mid-write.
    """
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = _TEMPORARY_NAME.fullmatch(entry.name)
            if name is None or _process_alive(int(name.group(1))) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid <= 0 or os.name != "posix":  # elsewhere signal 0 is no mere question
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, OSError):
        return False
    return True


def discard(temporary: Path) -> None:
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_file(path: Path, durable: bool = False, text: bool = False) -> Iterator[IO]:
    """Stream into a temporary file beside path; rename it over path only when the block ends well.

    The rename alone protects against a killed process. `durable` also syncs to
    disk (against power loss); per-call records skip it because a record lost
    that way reads as missing, which costs one repeated request, not bad data.
    """
    fd, temporary = open_temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        discard(temporary)
        raise


def atomic_text_file(path: Path) -> ContextManager[TextIO]:
    """A durable UTF-8 text file written in one piece: what datasets are written with."""
    return atomic_file(path, durable=True, text=True)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    with atomic_file(path, durable) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def _readable_json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def atomic_write_json(path: Path, data: Any, durable: bool = False) -> None:
    atomic_write_bytes(path, _readable_json(data), durable)


def write_json_if_changed(path: Path, data: Any) -> bool:
    """atomic_write_json, skipped when the file already holds exactly this: a
    resumed run rebuilds every chunk's result, and most are unchanged. Reading
    a file back costs far less than creating one."""
    content = _readable_json(data)
    try:
        with open(path, "rb") as handle:
            if handle.read(len(content) + 1) == content:
                return False
    except OSError:
        pass
    atomic_write_bytes(path, content)
    return True


def read_json(path: Path) -> Optional[Any]:
    """The stored value, or None when absent or unreadable (a cache miss)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


CALL_LOG = "calls.jsonl"


class CallLog:
    """One step's calls: an append-only JSON-lines file and an index of where each key's line is.

    Only offsets are held in memory, so a resumed run of any size costs an index
    of keys, not the records themselves.
    """

    def __init__(self, folder: Path, read_only: bool = False):
        self.folder = folder
        self.path = folder / CALL_LOG
        # Read-only: for looking while a run may be appending (`--check`); never cuts a torn line.
        self.read_only = read_only
        self.unreadable = 0
        self._index: dict[str, tuple[int, int]] = {}
        self._fd: Optional[int] = None
        self._end = 0
        self._torn = False  # the log ends in a partial line, to cut off before appending
        self._legacy = self._legacy_names()
        self._scan()

    def _legacy_names(self) -> set[str]:
        """Per-call files (<key>.json) that earlier versions wrote; still honoured on resume."""
        try:
            return {entry.name[:-5] for entry in os.scandir(self.folder) if entry.name.endswith(".json")}
        except FileNotFoundError:
            return set()

    def _scan(self) -> None:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return
        offset = 0
        with handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # torn by a killed run: cut off before the next append
                key = _record_key(line)
                if key is None:
                    self.unreadable += 1
                else:
                    self._index[key] = (offset, len(line))
                offset += len(line)
        self._end = offset
        self._torn = self.path.stat().st_size != offset

    def __contains__(self, key: str) -> bool:
        return key in self._index or key in self._legacy

    def __len__(self) -> int:
        return len(self._index.keys() | self._legacy)

    def load(self, key: str) -> Optional[dict]:
        place = self._index.get(key)
        if place is None:
            return read_json(self.folder / f"{key}.json") if key in self._legacy else None
        try:
            return orjson.loads(_read_at(self._descriptor(), place[0], place[1]))
        except (OSError, ValueError):
            return None

    def append(self, key: str, record: dict) -> None:
        if self.read_only:
            raise PermissionError(f"{self.path} was opened read-only")
        line = orjson.dumps({"key": key, **record}, option=orjson.OPT_APPEND_NEWLINE)
        fd = self._descriptor()
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            # A full disk can take half a line: cut it off so the log stays whole.
            os.ftruncate(fd, self._end)
            raise
        self._index[key] = (self._end, len(line))
        self._end += len(line)

    def _descriptor(self) -> int:
        if self._fd is None and self.read_only:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o644)
            if self._torn:
                os.ftruncate(self._fd, self._end)
                self._torn = False
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_at(fd: int, offset: int, length: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, length, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows has no pread; appends ignore the position
    return os.read(fd, length)


def _record_key(line: bytes) -> Optional[str]:
    """The key of a line holding a whole call record; None for anything else."""
    try:
        return _whole_record_key(orjson.loads(line))
    except ValueError:
        return None


def _whole_record_key(record: Any) -> Optional[str]:
    """A call record's key if it has one and a response; None for anything else."""
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        return None
    if not isinstance(record.get("response"), str):
        return None
    return record["key"]


def count_calls(step_folder: Path) -> int:
    """How many calls a step folder records (its log's lines, plus any per-call files)."""
    log = CallLog(step_folder)
    try:
        return len(log)
    finally:
        log.close()


class CallStore:
    """Model calls of one run, one append-only log per step under OUTPUT/calls/<step>/."""

    def __init__(self, output_dir: Path, read_only: bool = False):
        self.root = Path(output_dir) / CALLS_DIR
        self.read_only = read_only
        self.hits = 0
        self._logs: dict[str, CallLog] = {}

    def log(self, step: str) -> CallLog:
        """The step's log, read once when first used: a fresh run then asks the
        disk nothing per call, and a resumed one reads each log once."""
        log = self._logs.get(step)
        if log is None:
            log = self._logs[step] = CallLog(self.root / step, self.read_only)
        return log

    def load(self, step: str, key: str) -> Optional[dict]:
        record = self.log(step).load(key)
        if _whole_record_key(record) != key:
            return None
        self.hits += 1
        return record

    def save(self, step: str, key: str, record: dict) -> None:
        # On the event loop's thread: one append is tens of microseconds, and a
        # worker thread measured dearer in CPU (the lock handoffs).
        self.log(step).append(key, record)

    def close(self) -> None:
        for log in self._logs.values():
            log.close()

    def save_template(self, step: str, prompt: Any) -> str:
        """Store a step's prompt template once; calls refer to it by id.

        Calls of one step share their instructions and few-shot examples, which
        are most of every prompt, so each call record keeps only the values
        filled in. That makes the records several times smaller, and so faster
        to write.
        """
        template_id = work_key(prompt)[:16]
        if self.read_only:
            return template_id
        path = self.root / step / TEMPLATES_DIR / f"{template_id}.json"
        if read_json(path) is None:
            atomic_write_json(path, {"template": template_id, "prompt": prompt})
        return template_id


@contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """Hold OUTPUT for one run; a second run on the same folder stops with OutputInUse.

    The lock is the kernel's (flock), so a killed run never leaves it held.
    The file stays behind, naming the last run's process.
    """
    if fcntl is None:
        yield
        return
    fd = os.open(Path(output_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise OutputInUse(
                f"another run (process {holder}) is writing to {output_dir}; "
                "wait for it to end, or set PATH.OUTPUT to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
