"""Which entries of the input folder are files to read, and why the others are not.

The walk must survive whatever a folder holds: a name that is not valid UTF-8,
folders nested thousands deep, symlinks (to a file outside the folder, to a
folder, in a loop), named pipes and devices. It never follows a link out of the
input folder: a link to /etc/passwd would send that file to the model and into
the pretraining corpus. Everything that is not read is reported with its reason
(hidden entries aside, which are left out silently as always).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["InputEntry", "walk_input", "display_name"]


@dataclass(frozen=True)
class InputEntry:
    """One entry of the input folder: a file to read (reason empty), or one left unread and why."""

    path: Path  # what to open: the entry itself (a link inside the folder is opened through itself)
    relative: str  # relative to the input folder, POSIX separators, always valid Unicode
    reason: str = ""

    @property
    def readable(self) -> bool:
        return not self.reason


def display_name(name: str) -> str:
    """A file name as valid Unicode text.

    os.scandir hands back bytes that are not UTF-8 as lone surrogates
    ("bad\\udcffname.txt"), which cannot be written to JSON or a UTF-8 log.
    Those bytes are shown escaped ("bad\\xffname.txt"); any other name is unchanged.
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def walk_input(root: Path) -> Iterator[InputEntry]:
    """Every entry under root in sorted order, depth-first, hidden entries left out.

    Iterative, with one open listing per level, so depth costs no recursion.
    """
    root = Path(root)
    real_root = os.path.realpath(root)
    levels: list[tuple[Iterator[os.DirEntry], str]] = []
    listing = _listing(root, "")
    if isinstance(listing, InputEntry):
        yield listing
        return
    levels.append((listing, ""))
    while levels:
        entries, prefix = levels[-1]
        entry = next(entries, None)
        if entry is None:
            levels.pop()
            continue
        if entry.name.startswith("."):
            continue
        relative = prefix + display_name(entry.name)
        if _is_folder(entry):
            listing = _listing(Path(entry.path), relative + "/")
            if isinstance(listing, InputEntry):
                yield listing
            else:
                levels.append((listing, relative + "/"))
            continue
        yield InputEntry(Path(entry.path), relative, _why_not_read(entry, real_root))


def _listing(folder: Path, prefix: str) -> Iterator[os.DirEntry] | InputEntry:
    """The folder's entries sorted by name, or an entry saying why it cannot be listed."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        return InputEntry(folder, prefix or "./", f"cannot list folder: {error.strerror or error}")
    return iter(entries)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _why_not_read(entry: os.DirEntry, real_root: str) -> str:
    """Empty for a regular file (or a link to one inside the input folder), else the reason."""
    try:
        if entry.is_symlink():
            return _why_not_follow(entry.path, real_root)
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as error:
        return f"unreadable entry: {error.strerror or error}"
    return "" if stat.S_ISREG(mode) else f"not a regular file ({_kind(mode)})"


def _why_not_follow(link: str, real_root: str) -> str:
    try:
        mode = os.stat(link).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symlink loop (not followed)"
        return f"broken symlink: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "symlink to a folder (not followed)"
    if not stat.S_ISREG(mode):
        return f"symlink to something that is not a regular file ({_kind(mode)})"
    if not _inside(os.path.realpath(link), real_root):
        return "symlink to a file outside the input folder (not followed; copy the file in instead)"
    return ""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "folder"),
    ):
        if test(mode):
            return name
    return "special file"


def regular_file(path: Path) -> Optional[str]:
    """None when path is (still) a regular file; else why it must not be opened.

    Checked again just before reading: an entry swapped for a named pipe after
    the walk would block the run forever on open()."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"unreadable file: {error.strerror or error}"
    return None if stat.S_ISREG(mode) else f"not a regular file ({_kind(mode)})"
