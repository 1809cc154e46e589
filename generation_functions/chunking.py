"""Cut documents into pieces small enough for one prompt, without breaking meaning.

Rules (why each exists):
- pieces hold at most ``chunk_size`` characters, so a prompt never overflows;
- whole paragraphs are packed greedily, so each piece reads as connected text;
- an oversize paragraph is split at sentence boundaries, then lines, then words,
  never mid-word (only a single word longer than ``chunk_size`` is hard-cut);
- a fenced code block or a markdown table stays whole where it fits, because
  half a table or half a function is useless to a question writer;
- whitespace is normalised outside code fences, but every word survives in order;
- identical chunk texts are yielded once across documents (duplicate files,
  repeated boilerplate would otherwise cost generation twice).

A fence that is never closed counts as plain text, so one stray ``` cannot
turn the rest of a document into "code".

The algorithm is linear and mostly C-level: fences are found with str.find,
whitespace is tidied with literal-prefixed regexes and str methods, pieces
are collected in lists and joined once (tens of MB/s on plain text).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from generation_functions.documents import Document

__all__ = ["Chunk", "split_text", "chunk_document", "chunk_documents", "normalize_whitespace"]

_LINE_BREAKS = re.compile(r"\r\n?|[\f\v]")  # CRLF, CR, form feeds (page breaks)
_SPACE_RUN = re.compile(r"  [ ]*")  # literal prefix: the regex engine jumps between candidates
_UNUSUAL_SPACES = "\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
_BLANK_LINES = re.compile(r"\n\n\n+")  # starts with a literal: the regex engine scans fast
_NON_SPACE = re.compile(r"\S")
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)
# Where an oversize paragraph may be cut, coarsest first.  Each matches the
# whitespace run at a boundary; the whitespace itself is dropped at a cut.
# One leading character class (no top-level alternation) lets the regex engine
# skip quickly to candidates: ~40 MB/s instead of ~5 MB/s with lookbehinds first.
_SENTENCE_GAP = re.compile(
    r"[.!?…。\n]"
    r"(?:(?<=\n)(?=[ \t]*(?:[-*+]\s|\d{1,3}[.)]\s|#{1,6}\s|\|))"  # a newline before a list item, heading, table row
    r"|(?<!\n)[\"')\]”’]?(?P<gap>\s+))"  # whitespace after sentence punctuation (and a closing quote)
)
_LINE_GAP = re.compile(r"\n")

_BLOCK_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Chunk:
    """One unit of generation work: a piece of a document plus where it came from."""

    text: str
    source: str  # Document.path
    textdetails: str  # Document.textdetails
    index: int  # position of the chunk within its document, 0-based

    @property
    def key(self) -> str:
        """sha256 hex of the text: identifies the unit of work across runs and files."""
        return _text_key(self.text)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- normalising


def _tidy_line(line: str) -> str:
    """Collapse whitespace runs inside a line and strip its end; keep its indentation."""
    stripped = line.strip()
    if stripped == line and "  " not in line and "\t" not in line and line.isascii():
        return line  # the common case, decided by C-level checks only
    if not stripped:
        return ""
    indentation = line[: len(line) - len(line.lstrip())]
    return indentation + " ".join(stripped.split())


def _collapse_space_run(match: re.Match[str]) -> str:
    """A run of 2+ spaces: gone at a line end, kept as indentation, else one space."""
    text, start, end = match.string, match.start(), match.end()
    if end == len(text) or text[end] == "\n":
        return ""
    if start == 0 or text[start - 1] == "\n":
        return match.group()
    return " "


def _has_unusual_space(segment: str) -> bool:
    """Tabs, no-break or typographic spaces: they need the slower line-by-line pass."""
    if "\t" in segment:
        return True
    return not segment.isascii() and any(char in segment for char in _UNUSUAL_SPACES)


def _normalize_prose(segment: str) -> str:
    """Collapse spaces inside lines, strip line ends, keep at most one blank line.

    Spaces-only text (the usual case) is handled with a literal-prefixed regex
    and str.replace, ~100 MB/s; tabs and exotic spaces go line by line
    (~40 MB/s); text with nothing to tidy costs only a few C-level scans.
    """
    if _has_unusual_space(segment):
        segment = "\n".join([_tidy_line(line) for line in segment.split("\n")])
    else:
        if "  " in segment:
            segment = _SPACE_RUN.sub(_collapse_space_run, segment)
        if " \n" in segment:
            segment = segment.replace(" \n", "\n")
        if segment.endswith(" "):
            segment = segment.rstrip(" ")
    if "\n\n\n" in segment:
        segment = _BLANK_LINES.sub("\n\n", segment)
    return segment


def _normalize_fence(fence: str) -> str:
    """Code keeps its spacing; only line-end spaces go (they carry no meaning)."""
    return "\n".join([line.rstrip() for line in fence.split("\n")])


def _fence_run(text: str, start: int) -> str:
    """The run of fence characters (``` or ~~~, any length) starting at start."""
    char, end = text[start], start
    while end < len(text) and text[end] == char:
        end += 1
    return text[start:end]


def _is_line_start(text: str, position: int) -> bool:
    """True when only up to 3 spaces precede position on its line (CommonMark fence rule)."""
    line_start = text.rfind("\n", 0, position) + 1
    indentation = text[line_start:position]
    return len(indentation) <= 3 and indentation.strip(" ") == ""


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


class _FenceMarkers:
    """Next ``` or ~~~ at or after a position, via str.find (fast).

    Each marker's last hit is remembered, so a marker that is absent or far
    away is not searched again on every call: the scan stays linear.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.next_at = {"```": -2, "~~~": -2}  # -2: not searched yet, -1: none left

    def find(self, position: int) -> int:
        found = []
        for marker, index in self.next_at.items():
            if index == -2 or 0 <= index < position:
                index = self.text.find(marker, position)
                self.next_at[marker] = index
            if index >= 0:
                found.append(index)
        return min(found) if found else -1


def _find_closing_fence(text: str, fence: str, position: int) -> int:
    """End of the line that closes fence, searching from position; -1 if never closed."""
    while True:
        index = text.find(fence, position)
        if index < 0:
            return -1
        end = _line_end(text, index)
        rest = text[index:end].lstrip(fence[0])
        if _is_line_start(text, index) and rest.strip(" \t") == "":
            return end
        position = index + len(fence)


def _fence_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each fenced code block.

    An unclosed fence is treated as plain text (CommonMark would run it to the
    end): one stray ``` must not turn the rest of a document into "code".
    """
    markers = _FenceMarkers(text)
    position = 0
    while True:
        index = markers.find(position)
        if index < 0:
            return
        fence = _fence_run(text, index)
        open_end = _line_end(text, index)
        info = text[index + len(fence) : open_end]
        if not _is_line_start(text, index) or (fence[0] == "`" and "`" in info):
            position = index + len(fence)
            continue
        end = _find_closing_fence(text, fence, open_end)
        if end < 0:
            position = index + len(fence)
            continue
        yield text.rfind("\n", 0, index) + 1, end
        position = end


def _segments(text: str) -> Iterator[tuple[bool, str]]:
    """Yield (is_code_fence, normalised segment) in document order."""
    if "\r" in text or "\f" in text or "\v" in text:
        text = _LINE_BREAKS.sub("\n", text)
    position = 0
    for start, end in _fence_spans(text):
        if start > position:
            yield False, _normalize_prose(text[position:start])
        yield True, _normalize_fence(text[start:end])
        position = end
    if position < len(text):
        yield False, _normalize_prose(text[position:])


def normalize_whitespace(text: str) -> str:
    """The text as chunks see it: same words, tidy whitespace, code fences untouched."""
    parts = []
    for is_fence, segment in _segments(text):
        segment = segment.strip("\n")
        if segment.strip():
            parts.append(segment)
    return _BLOCK_SEPARATOR.join(parts)


# --------------------------------------------------------------------------- splitting


def _cut_at_words(text: str, limit: int) -> list[str]:
    """Cut at the last whitespace that fits; hard-cut only a word longer than limit."""
    pieces = []
    start, end_of_text = 0, len(text)
    while True:
        first = _NON_SPACE.search(text, start)
        if first is None:
            break
        start = first.start()
        if end_of_text - start <= limit:
            pieces.append(text[start:].rstrip())
            break
        window_end = start + limit
        # A space right after the window still lets the window's words stay whole.
        space = _LAST_SPACE.match(text, start, window_end + 1)
        if space is not None and space.end() - 1 > start:
            cut = space.end() - 1
            pieces.append(text[start:cut].rstrip())
        else:
            cut = window_end
            pieces.append(text[start:cut])
        start = cut
    return pieces


def _split_by(text: str, gap: re.Pattern[str]) -> list[tuple[str, str]]:
    """Split text at every gap (the group "gap" when the pattern has one, else the match).

    Returns (separator, piece) pairs; the separator is what joins the piece back
    to the previous one: a newline when the gap held one (keeps lists and code
    lines apart), else a space.
    """
    pieces: list[tuple[str, str]] = []
    position, separator = 0, ""
    has_group = "gap" in gap.groupindex
    for match in gap.finditer(text):
        start, end = match.span("gap") if has_group and match.group("gap") is not None else match.span()
        piece = text[position:start]
        if piece.strip():
            pieces.append((separator, piece))
        separator = "\n" if "\n" in text[start:end] else " "
        position = end
    piece = text[position:]
    if piece.strip():
        pieces.append((separator, piece))
    return pieces


def _atoms_of_oversize(text: str, limit: int, gaps: tuple[re.Pattern[str], ...]) -> list[tuple[str, str]]:
    """Break text into (separator, piece) atoms of at most limit chars, coarsest gaps first."""
    if not gaps:
        return [(" ", piece) for piece in _cut_at_words(text, limit)]
    atoms: list[tuple[str, str]] = []
    for separator, piece in _split_by(text, gaps[0]):
        if len(piece) <= limit:
            atoms.append((separator, piece))
            continue
        sub_atoms = _atoms_of_oversize(piece, limit, gaps[1:])
        if sub_atoms:
            atoms.append((separator, sub_atoms[0][1]))
            atoms.extend(sub_atoms[1:])
    return atoms


def _is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def _table_runs(paragraph: str) -> list[tuple[bool, str]]:
    """Group a paragraph's lines into runs of markdown-table rows and other lines."""
    runs: list[tuple[bool, list[str]]] = []
    for line in paragraph.split("\n"):
        is_table = _is_table_line(line)
        if runs and runs[-1][0] == is_table:
            runs[-1][1].append(line)
        else:
            runs.append((is_table, [line]))
    return [(is_table, "\n".join(lines)) for is_table, lines in runs]


def _atoms_of_paragraph(paragraph: str, limit: int) -> list[tuple[str, str]]:
    """Atoms of one oversize prose paragraph; a table inside it stays whole if it fits."""
    if "|" not in paragraph:
        return _atoms_of_oversize(paragraph, limit, (_SENTENCE_GAP, _LINE_GAP))
    atoms: list[tuple[str, str]] = []
    for is_table, run in _table_runs(paragraph):
        if len(run) <= limit:
            run_atoms = [("\n", run)]
        elif is_table:
            run_atoms = _atoms_of_oversize(run, limit, (_LINE_GAP,))
        else:
            run_atoms = _atoms_of_oversize(run, limit, (_SENTENCE_GAP, _LINE_GAP))
        if run_atoms:
            atoms.append(("\n", run_atoms[0][1]))
            atoms.extend(run_atoms[1:])
    return atoms


def _atoms(text: str, limit: int) -> list[tuple[str, str]]:
    """(separator, piece) atoms of the whole text, each at most limit chars, in order.

    One flat loop building a list: per-paragraph generator layers cost more
    than the string work on typical short paragraphs.
    """
    atoms: list[tuple[str, str]] = []
    append = atoms.append
    for is_fence, segment in _segments(text):
        for block in (segment,) if is_fence else segment.split(_BLOCK_SEPARATOR):
            block = block.strip("\n")
            if not block or block.isspace():
                continue
            if len(block) <= limit:
                append((_BLOCK_SEPARATOR, block))
                continue
            pieces = _atoms_of_oversize(block, limit, (_LINE_GAP,)) if is_fence else _atoms_of_paragraph(block, limit)
            if pieces:
                append((_BLOCK_SEPARATOR, pieces[0][1]))
                atoms.extend(pieces[1:])
    return atoms


def split_text(text: str, chunk_size: int) -> list[str]:
    """Split text into pieces of at most chunk_size characters (see module docstring)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks: list[str] = []
    current: list[str] = []
    current_length = 0

    def flush() -> None:
        chunk = "".join(current).strip()
        if chunk:
            chunks.append(chunk)

    for separator, piece in _atoms(text, chunk_size):
        if current and current_length + len(separator) + len(piece) <= chunk_size:
            current.append(separator)
            current.append(piece)
            current_length += len(separator) + len(piece)
        else:
            if current:
                flush()
            current = [piece]
            current_length = len(piece)
    if current:
        flush()
    return chunks


def chunk_document(doc: Document, chunk_size: int) -> list[Chunk]:
    """All chunks of one document, numbered in order (duplicates kept: see chunk_documents)."""
    textdetails = doc.textdetails
    return [
        Chunk(text=text, source=doc.path, textdetails=textdetails, index=index)
        for index, text in enumerate(split_text(doc.text, chunk_size))
    ]


def chunk_documents(
    docs: Iterable[Document], chunk_size: int, on_duplicate: Optional[Callable[[Chunk], None]] = None
) -> Iterator[Chunk]:
    """Stream chunks of many documents; an already-seen chunk text is skipped (first wins)
    and passed to `on_duplicate`, so the run report can count it.

    Only 32-byte digests are remembered, so memory stays small on big corpora.
    """
    seen: set[bytes] = set()
    for doc in docs:
        for chunk in chunk_document(doc, chunk_size):
            digest = hashlib.sha256(chunk.text.encode("utf-8")).digest()
            if digest in seen:
                if on_duplicate is not None:
                    on_duplicate(chunk)
                continue
            seen.add(digest)
            yield chunk
