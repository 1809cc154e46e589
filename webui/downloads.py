"""The output files, offered for download.

The web server serves only files under its own upload folder (or paths fixed at
launch), and OUTPUT may be anywhere, so each refresh links the files into a
new folder there (a hard link costs no space; a copy where links cannot be
made). A new folder per refresh, not one replaced in place: renaming a link
over another link to the same file does nothing, which once left a temporary
behind that made every later refresh fail. Old folders are pruned, all of them
go when the app exits, and folders of an app that was killed go at the next start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable

from generation_functions.datasets import DATASET_FILES, RUN_REPORT

PREFIX = "verustoolkit-downloads-"
KEEP_SECONDS = 600  # a page shown this long ago may still hold links into its folder
KEEP_AT_LEAST = 4


def output_files(output_dir: Path) -> list[Path]:
    """The datasets and the run report that exist in output_dir."""
    return [output_dir / name for name in (*DATASET_FILES, RUN_REPORT) if (output_dir / name).is_file()]


class DownloadStage:
    """Folders under `parent` (the web server's upload folder) holding links to output files."""

    def __init__(self, parent: Path):
        parent.mkdir(parents=True, exist_ok=True)
        remove_orphans(parent)
        self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        self._lock = threading.Lock()

    def stage(self, files: Iterable[Path]) -> dict[str, Path]:
        """File name -> a servable path with the same content, in a folder of its own."""
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="refresh-", dir=self.root))
            self._prune(keep=folder)
        staged = {}
        for source in files:
            target = folder / source.name
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            staged[source.name] = target
        return staged

    def _prune(self, keep: Path) -> None:
        folders = sorted(self.root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        now = time.time()
        for number, folder in enumerate(folders):
            if folder == keep or number < KEEP_AT_LEAST or now - folder.stat().st_mtime < KEEP_SECONDS:
                continue
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def remove_orphans(parent: Path) -> None:
    """Staging folders of apps that are no longer running (killed before they could clean up)."""
    for folder in parent.glob(f"{PREFIX}*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
