"""Atomic, content-addressed storage of finished work in OUTPUT.

Every model call is stored under a key made from what determines it (step,
model, rendered prompt, sampling, slot), as a readable JSON file in a folder per
step. A rerun finds the file and makes no request; a changed document or prompt
changes the key and so redoes only what it changes. Writes go to a temporary
file in the same folder and are then renamed, so a killed run never leaves a
half-written record; an unreadable record is treated as missing, never as done.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any, Optional

import orjson

CALLS_DIR = "calls"
TEMPLATES_DIR = "templates"


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


def discard(temporary: Path) -> None:
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """Write to a temporary file beside path, then rename over it.

    The rename alone protects against a killed process. `durable` also syncs to
    disk (against power loss); per-call records skip it because a record lost
    that way reads as missing, which costs one repeated request, not bad data.
    """
    fd, temporary = open_temporary(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        discard(temporary)
        raise


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def atomic_write_json(path: Path, data: Any, durable: bool = False) -> None:
    atomic_write_bytes(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE), durable)


def read_json(path: Path) -> Optional[Any]:
    """The stored value, or None when absent or unreadable (a cache miss)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class CallStore:
    """Model calls of one run, one file per call under OUTPUT/calls/<step>/."""

    def __init__(self, output_dir: Path):
        self.root = Path(output_dir) / CALLS_DIR
        self.hits = 0
        self._listing: dict[str, set[str]] = {}

    def path(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.json"

    def _stored_names(self, step: str) -> set[str]:
        """The call files a step had when the run started, listed once: a fresh
        run then asks the disk nothing per call, and a resumed one one listing."""
        names = self._listing.get(step)
        if names is None:
            try:
                names = {entry.name for entry in os.scandir(self.root / step) if entry.name.endswith(".json")}
            except FileNotFoundError:
                names = set()
            self._listing[step] = names
        return names

    def load(self, step: str, key: str) -> Optional[dict]:
        if f"{key}.json" not in self._stored_names(step):
            return None
        record = read_json(self.path(step, key))
        if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("response"), str):
            return None
        self.hits += 1
        return record

    def save(self, step: str, key: str, record: dict) -> None:
        # Written on the event loop's thread: a worker thread measured dearer in
        # CPU (the lock handoffs) and no faster, as one small write is ~0.1 ms.
        atomic_write_json(self.path(step, key), {"key": key, **record})
        self._stored_names(step).add(f"{key}.json")

    def save_template(self, step: str, prompt: Any) -> str:
        """Store a step's prompt template once; calls refer to it by id.

        Calls of one step share their instructions and few-shot examples, which
        are most of every prompt, so each call file keeps only the values filled
        in. That makes the files several times smaller, and so faster to write.
        """
        template_id = work_key(prompt)[:16]
        path = self.root / step / TEMPLATES_DIR / f"{template_id}.json"
        if read_json(path) is None:
            atomic_write_json(path, {"template": template_id, "prompt": prompt})
        return template_id
