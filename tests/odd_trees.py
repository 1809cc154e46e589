"""Input folders that real disks hold and that every reader of PATH.INPUT must survive.

A name that is not valid UTF-8, folders nested a thousand deep, links out of
the folder, into a folder, in a loop or to nothing, and a named pipe. Used by
the reader's, the run's and the WebUI's tests.
"""

from __future__ import annotations

import os
from pathlib import Path

BAD_NAME = b"bad\xffname.txt"
BAD_NAME_SHOWN = "bad\\xffname.txt"  # how reports and datasets name it
DEEP_LEVELS = 1000
DEEP_FILE = "/".join(["d"] * DEEP_LEVELS) + "/deep.md"
SECRET = "root-secret-line-that-must-never-be-read"

# What each odd entry becomes in skipped_files.
SKIPPED_REASONS = {
    "fifo.txt": "not a regular file (named pipe)",
    "folder_link": "symlink to a folder (not followed)",
    "loop_a.txt": "symlink loop (not followed)",
    "loop_b.txt": "symlink loop (not followed)",
    "missing_link.txt": "broken symlink: No such file or directory",
    "outside_link.txt": "symlink to a file outside the input folder (not followed; copy the file in instead)",
}


def build_odd_tree(input_dir: Path, outside: Path) -> None:
    """Fill input_dir with every odd entry; `outside` gets the file a link must not leak."""
    input_dir.mkdir(parents=True, exist_ok=True)
    outside.write_text(f"{SECRET}\n", encoding="utf-8")
    with open(os.path.join(os.fsencode(input_dir), BAD_NAME), "wb") as handle:
        handle.write(b"A file whose name is not UTF-8 still explains how Verus identities are registered on chain.\n")
    deep = input_dir
    for name in DEEP_FILE.split("/")[:-1]:  # one level at a time: mkdir(parents=True) recurses per level
        deep = deep / name
        deep.mkdir()
    (deep / "deep.md").write_text("A deeply nested note explains how the Verus bridge moves currencies safely.\n")
    os.mkfifo(input_dir / "fifo.txt")
    (input_dir / "folder_link").symlink_to(input_dir, target_is_directory=True)
    (input_dir / "loop_a.txt").symlink_to(input_dir / "loop_b.txt")
    (input_dir / "loop_b.txt").symlink_to(input_dir / "loop_a.txt")
    (input_dir / "missing_link.txt").symlink_to(input_dir / "nowhere.txt")
    (input_dir / "outside_link.txt").symlink_to(outside)
    (input_dir / "plain.md").write_text("Verus staking rewards holders who keep their wallet online and synced.\n")
    (input_dir / "inside_link.md").symlink_to(input_dir / "plain.md")


def remove_tree(root: Path) -> None:
    """Delete a tree too deep for shutil.rmtree (which recurses once per level), links not followed."""
    root = os.fsencode(root)
    if not os.path.lexists(root):
        return
    folders = [root]
    index = 0
    while index < len(folders):
        with os.scandir(folders[index]) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                else:
                    os.unlink(entry.path)
        index += 1
    for folder in reversed(folders):
        os.rmdir(folder)
