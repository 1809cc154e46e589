"""The documents an index holds, and their chunks: the pipeline's own.

Two sources give the same chunks the pipeline makes:
- PATH.INPUT, read with the pipeline's reader (generation_functions/documents.py)
  and cut with its chunker at SYSTEM.CHUNK_SIZE (generation_functions/chunking.py);
- a finished OUTPUT folder: the chunks its run recorded (chunk_index.json and
  chunk_results/), for when the documents themselves are not at hand.

Each document carries a fingerprint. The index compares it with the one it
stored, and an unchanged document is neither read nor chunked again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from generation_functions.chunking import chunk_document
from generation_functions.documents import Document, SkippedFile, iter_document_files, read_document
from generation_functions.errors import InputError
from retrieval.text import heading_trails

RESULTS_DIR = "chunk_results"  # as control_flow_functions writes them (not imported: it pulls in the engine)
CHUNK_INDEX = "chunk_index.json"


@dataclass(frozen=True)
class SourceChunk:
    key: str  # sha256 of the text: the pipeline's chunk key
    text: str
    position: int  # the chunk's index within its document
    trail: str  # the headings in force where the chunk starts


@dataclass(frozen=True)
class SourceDocument:
    path: str  # relative to PATH.INPUT, as the pipeline names it (source_filename)
    title: str
    chunks: tuple[SourceChunk, ...]


@dataclass(frozen=True)
class Listing:
    """One document as a source lists it: its fingerprint, and how to read it if it changed."""

    path: str
    fingerprint: str
    read: Callable[[], Optional[SourceDocument]]  # None: nothing readable (a skipped file)


def source_chunks(texts: list[str]) -> tuple[SourceChunk, ...]:
    trails = heading_trails(texts)
    return tuple(
        SourceChunk(_key(text), text, position, trail)
        for position, (text, trail) in enumerate(zip(texts, trails))
    )


# ---------------------------------------------------------------- PATH.INPUT


def list_input(input_dir: Path, chunk_size: int) -> Iterator[Listing]:
    """Every file of the input folder; the fingerprint is its bytes' hash (cheap next to parsing it)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist")
    for path, relative in iter_document_files(input_dir):
        try:
            digest = _file_digest(path)
        except OSError:
            continue  # gone or unreadable since listing: as if absent
        yield Listing(relative, f"{digest}:{chunk_size}", _reader(path, relative, chunk_size))


def _reader(path: Path, relative: str, chunk_size: int) -> Callable[[], Optional[SourceDocument]]:
    def read() -> Optional[SourceDocument]:
        item = read_document(path, relative)
        if isinstance(item, SkippedFile):
            return None
        return _from_document(item, chunk_size)

    return read


def _from_document(document: Document, chunk_size: int) -> SourceDocument:
    texts = [chunk.text for chunk in chunk_document(document, chunk_size)]
    return SourceDocument(document.path, document.title, source_chunks(texts))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- a finished OUTPUT


def list_output(output_dir: Path) -> Iterator[Listing]:
    """The chunks of the OUTPUT folder's latest run, grouped by document in run order."""
    by_document = _output_chunks(Path(output_dir))
    for path, chunks in by_document.items():
        chunks.sort(key=lambda chunk: chunk[0])
        texts = [text for _, text in chunks]
        fingerprint = hashlib.sha256("\n".join(_key(text) for text in texts).encode()).hexdigest()
        yield Listing(path, fingerprint, _output_reader(path, texts))


def _output_reader(path: str, texts: list[str]) -> Callable[[], Optional[SourceDocument]]:
    # The run stored no titles; the file name stands in for one.
    return lambda: SourceDocument(path, path.rsplit("/", 1)[-1], source_chunks(texts))


def _output_chunks(output_dir: Path) -> dict[str, list[tuple[int, str]]]:
    keys = _chunk_keys(output_dir)
    by_document: dict[str, list[tuple[int, str]]] = {}
    for key in dict.fromkeys(keys):
        result = _read_result(output_dir / RESULTS_DIR / f"{key}.json")
        if result is None:
            continue
        by_document.setdefault(result["source"], []).append((result["chunk_index"], result["chunk"]))
    return by_document


def _chunk_keys(output_dir: Path) -> list[str]:
    index_file = output_dir / CHUNK_INDEX
    try:
        keys = json.loads(index_file.read_text(encoding="utf-8"))["keys"]
    except FileNotFoundError:
        raise InputError(f"{output_dir} holds no finished run ({CHUNK_INDEX} is missing)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read {index_file}: {exc}") from None
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise InputError(f"{index_file} does not list chunk keys")
    return keys


def _read_result(path: Path) -> Optional[dict]:
    """A chunk's record, or None when it is missing or not one (a run killed mid-write)."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fields_ok = (
        isinstance(result, dict)
        and isinstance(result.get("source"), str)
        and isinstance(result.get("chunk_index"), int)
        and isinstance(result.get("chunk"), str)
    )
    return result if fields_ok else None


def _key(text: str) -> str:
    """The pipeline's chunk key (generation_functions/chunking.py: Chunk.key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
