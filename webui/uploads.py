"""Uploaded documents, copied into the input folder as saved on the server.

The folder is never taken from the browser: a request could name any folder.
A file keeps a plain name (no folders, no leading dots, no control or shell
characters), never overwrites or writes through a file already there, and an
identical re-upload is reported as already there instead of being added twice.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Literal

from generation_functions.input_walk import InputEntry, walk_input

_UNSAFE_CHARACTERS = re.compile(r"[^\w.\- ]+")
MAX_NAME_BYTES = 200

UploadFate = Literal["added", "renamed", "already there"]


@dataclass(frozen=True)
class StoredUpload:
    uploaded_name: str  # the name the file had in the browser
    path: Path  # where it is now
    fate: UploadFate


def sanitize_filename(name: str) -> str:
    """A plain file name: no folders, no leading dots, no control or shell characters."""
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    name = _UNSAFE_CHARACTERS.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    name = name.lstrip(".-")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    while len(name.encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
        name = f"{stem}.{suffix}" if suffix else stem
    return name or "upload"


def store_uploads(uploaded: Iterable[str | Path], input_dir: Path) -> list[StoredUpload]:
    """Copy uploaded files into input_dir under sanitised, unused names.

    A name never leads outside input_dir, and an existing file (or link) is
    never written through or replaced: a different file of the same name gets
    `name-1.ext`. Identical content already there is kept as the one copy."""
    input_dir.mkdir(parents=True, exist_ok=True)
    root = input_dir.resolve()
    return [_store_one(Path(source), root) for source in uploaded]


def _store_one(source: Path, root: Path) -> StoredUpload:
    name = sanitize_filename(source.name)
    stem, suffix = _split_name(name)
    for attempt in range(10_000):
        candidate = root / (name if attempt == 0 else f"{stem}-{attempt}{suffix}")
        if candidate.parent != root:
            raise ValueError(f"refusing to write outside {root}: {candidate}")
        if _same_regular_file(candidate, source):
            return StoredUpload(source.name, candidate, "already there")
        try:
            with open(candidate, "xb") as target, open(source, "rb") as handle:
                shutil.copyfileobj(handle, target)
        except FileExistsError:
            continue
        return StoredUpload(source.name, candidate, "added" if attempt == 0 else "renamed")
    raise OSError(f"no free name for {name} in {root}")


def _split_name(name: str) -> tuple[str, str]:
    path = Path(name)
    return (path.stem, path.suffix) if path.stem else (name, "")


def _same_regular_file(candidate: Path, source: Path) -> bool:
    if candidate.is_symlink() or not candidate.is_file():
        return False
    if candidate.stat().st_size != source.stat().st_size:
        return False
    return candidate.read_bytes() == source.read_bytes()


def upload_message(stored: list[StoredUpload], input_dir: Path) -> str:
    """What happened to each file, in words: added, added under another name, or already there."""
    added = [s for s in stored if s.fate == "added"]
    renamed = [s for s in stored if s.fate == "renamed"]
    present = [s for s in stored if s.fate == "already there"]
    lines = []
    if added:
        lines.append(f"Added {len(added)} file(s) to `{input_dir}`: " + ", ".join(f"`{s.path.name}`" for s in added) + ".")
    if renamed:
        lines.append(
            "Added under a new name, because a different file has that name: "
            + ", ".join(f"`{s.uploaded_name}` as `{s.path.name}`" for s in renamed)
            + "."
        )
    if present:
        lines.append(
            "Already there with the same content, nothing added: " + ", ".join(f"`{s.path.name}`" for s in present) + "."
        )
    return "  \n".join(lines) or "No file was uploaded."


def list_input_files(input_dir: Path, limit: int = 500) -> list[str]:
    """The files a run would read, relative to input_dir, in the order it reads them."""
    return [entry.relative for entry in _input_entries(input_dir, limit) if entry.readable]


def unread_input_entries(input_dir: Path, limit: int = 500) -> list[tuple[str, str]]:
    """What a run leaves unread before opening it (links out of the folder, pipes...), with why."""
    return [(entry.relative, entry.reason) for entry in _input_entries(input_dir, limit) if not entry.readable]


def _input_entries(input_dir: Path, limit: int) -> list[InputEntry]:
    """The run's own walk (generation_functions/input_walk.py), so the listing survives
    what a run survives: deep folders, names that are not UTF-8, links and pipes."""
    if not input_dir.is_dir():
        return []
    return list(islice(walk_input(input_dir), limit))


def input_files_markdown(input_dir: Path) -> str:
    files = list_input_files(input_dir)
    if not input_dir.is_dir():
        return f"The input folder `{input_dir}` does not exist yet; uploading creates it."
    unread = unread_input_entries(input_dir)
    if not files and not unread:
        return f"The input folder `{input_dir}` is empty."
    text = f"**{len(files)} file(s) in `{input_dir}`:**\n\n" + "\n".join(f"- `{name}`" for name in files)
    if unread:
        text += "\n\n**Not read:**\n\n" + "\n".join(f"- `{name}`: {reason}" for name, reason in unread)
    return text
