"""Read every document of an input folder as plain text, whatever its format.

The pipeline only needs text plus a little context (a title, where the file
lives).  Each format is handled by a well-kept library; anything that cannot
be read (binary, empty, encrypted, corrupt) becomes a SkippedFile with a reason
instead of an exception, so one bad file never stops a run over thousands.
Files are read one at a time, so memory does not grow with the corpus.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import warnings
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from generation_functions.errors import InputError
from generation_functions.input_walk import regular_file, walk_input

logger = logging.getLogger("verustoolkit.documents")  # a child of the one project logger

__all__ = [
    "Document",
    "SkippedFile",
    "iter_documents",
    "iter_document_files",
    "read_document",
    "read_documents",
    "SUPPORTED_EXTENSIONS",
]


@dataclass(frozen=True)
class Document:
    """One readable file: its text and what to call it in prompts."""

    path: str  # relative to the input folder, POSIX separators, e.g. "wiki/staking.md"
    title: str  # first heading / HTML <title> / PDF or DOCX title metadata, else the file stem
    text: str  # extracted text

    @property
    def textdetails(self) -> str:
        """What prompts see as {textdetails}: the title only when it says more than the file name."""
        if self.title == _stem(self.path):
            return self.path
        return f"{self.title} ({self.path})"


@dataclass(frozen=True)
class SkippedFile:
    """A file that holds no usable text, and why (shown to the user, one line each)."""

    path: str
    reason: str  # e.g. "empty file", "binary file", "encrypted PDF", "corrupt DOCX: <detail>"


class _Skip(Exception):
    """Raised inside a reader to turn the file into a SkippedFile with this reason."""


# --------------------------------------------------------------------------- helpers

_SNIFF_BYTES = 8192
_TITLE_SCAN_CHARS = 20_000
_MAX_TITLE_CHARS = 200
_MARKDOWN_HEADING = re.compile(r"#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t#]*")
_UNDERLINE = re.compile(r"(?:=+|-+|\*+|~+|\^+)")
_WHITESPACE_RUN = re.compile(r"\s+")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted or legacy (.doc) Office files
# Bytes that are not suspicious in text: everything but the C0 controls text never uses.
_NOT_CONTROL_BYTES = bytes(byte for byte in range(256) if byte >= 32 or byte in b"\t\n\r\f\b\x1b")
_WESTERN_SAMPLE_BYTES = 256 * 1024
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LETTER = re.compile(r"[^\W\d_]")
_WESTERN_PUNCTUATION = frozenset("\u00a0“”‘’‚„–—…€£•°©®™«»·§")


def _stem(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def _one_line(text: str) -> str:
    return _WHITESPACE_RUN.sub(" ", text).strip()[:_MAX_TITLE_CHARS].strip()


# C0 control characters other than tab, newline, form feed and carriage return:
# they carry no text and some model servers reject them.
_STRAY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _looks_binary(sample: bytes) -> bool:
    """Binary content has NUL bytes (outside UTF-16/32) or many control characters."""
    if not sample:
        return False
    if any(sample.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\x00" in sample and _looks_like_utf16_without_bom(sample):
        return False
    # A stray NUL or escape code in a text file is damage, not a sign of binary
    # data: binary formats are full of NULs and other control bytes.
    nuls = sample.count(b"\x00")
    controls = len(sample.translate(None, _NOT_CONTROL_BYTES))  # C-level count
    return nuls > max(2, len(sample) * 0.002) or controls / len(sample) > 0.05


def _looks_like_utf16_without_bom(sample: bytes) -> bool:
    """ASCII-heavy UTF-16 has a NUL in (almost) every odd or every even byte."""
    even, odd = sample[0::2], sample[1::2]
    if not even or not odd:
        return False
    return even.count(0) / len(even) > 0.9 or odd.count(0) / len(odd) > 0.9


def _decode(data: bytes) -> str:
    """Decode bytes as text: BOM, then UTF-8, then charset-normalizer's best guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as error:
                raise _Skip(f"undecodable text ({encoding} BOM but invalid bytes)") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _looks_like_utf16_without_bom(data[:_SNIFF_BYTES]):
        for encoding in ("utf-16-le", "utf-16-be"):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if "\x00" not in text[:_SNIFF_BYTES]:
                return text
    for decode in (_decode_mostly_utf8, _decode_western):
        text = decode(data)
        if text is not None:
            return text
    return _decode_detected(data)


def _decode_mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few stray bytes (one pasted Latin-1 character) stays UTF-8.

    A legacy-encoded file has no valid multi-byte sequences at all, so valid
    non-ASCII characters outnumbering the invalid bytes means UTF-8.
    """
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    valid_non_ascii = len(_NON_ASCII.findall(text)) - invalid
    return text if valid_non_ascii > invalid else None


def _decode_detected(data: bytes) -> str:
    """charset-normalizer's guess, nudged towards Windows code pages.

    Among near-equal guesses it often ranks rare ones (mac_cyrillic) first,
    while real files are overwhelmingly cp125x.
    """
    from charset_normalizer import from_bytes

    results = list(from_bytes(data))
    if not results:
        raise _Skip("binary file")
    best = results[0]
    for match in results:
        close = match.chaos <= best.chaos + 0.05 and match.coherence >= best.coherence - 0.1
        if close and match.encoding.startswith("cp125"):
            best = match
            break
    return str(best)


def _decode_western(data: bytes) -> str | None:
    """cp1252 (the usual "Latin-1") when it yields plausible Western text, else None.

    charset-normalizer often misnames short Western texts (cp1250, cp1257...),
    turning "è" into "č".  Correctly decoded Western text has few non-ASCII
    characters and they are letters or typographic marks; Cyrillic or Greek
    read as cp1252 is mostly non-ASCII letters, Central European shows symbols.
    """
    sample = data[:_WESTERN_SAMPLE_BYTES].decode("cp1252", errors="replace")
    non_ascii = _NON_ASCII.findall(sample)
    if not all(char.isalpha() or char in _WESTERN_PUNCTUATION for char in non_ascii):
        return None  # includes U+FFFD: a byte cp1252 leaves undefined
    letters = len(_LETTER.findall(sample))
    non_ascii_letters = sum(1 for char in non_ascii if char.isalpha())
    if not letters or non_ascii_letters / letters > 0.3:
        return None
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _Skip(f"unreadable file: {error.strerror or error}") from error


def _read_text(path: Path) -> str:
    """Whole file as text, refusing binary content."""
    data = _read_bytes(path)
    if not data.strip():
        raise _Skip("empty file")
    if _looks_binary(data[:_SNIFF_BYTES]):
        raise _Skip("binary file")
    return _STRAY_CONTROLS.sub("", _decode(data))


def _heading_title(text: str) -> str | None:
    """First markdown (# Title) or underlined (Title / =====) heading near the start.

    Line by line: multiline regexes anchored with ^ scan slowly over big files.
    """
    lines = text[:_TITLE_SCAN_CHARS].split("\n")
    for number, line in enumerate(lines):
        next_line = lines[number + 1] if number + 1 < len(lines) else ""
        heading = _line_heading(line, next_line)
        if heading and _one_line(heading):
            return _one_line(heading)
    return None


def _line_heading(line: str, next_line: str) -> str | None:
    """The heading text when line is an ATX heading or is underlined by next_line."""
    stripped = line.strip()
    if not stripped or len(line) - len(line.lstrip(" ")) > 3:
        return None  # blank, or an indented code line
    if stripped.startswith("#"):
        heading = _MARKDOWN_HEADING.fullmatch(stripped)
        return heading.group(1) if heading else None
    if _UNDERLINE.fullmatch(next_line.strip()) and not _UNDERLINE.fullmatch(stripped):
        return stripped if any(char.isalnum() for char in stripped) else None
    return None


# --------------------------------------------------------------------------- plain text


def _read_markup_text(path: Path) -> tuple[str | None, str]:
    """Markdown, reStructuredText and plain text: the text itself; title from its first heading."""
    text = _read_text(path)
    return _heading_title(text), text


def _read_source_code(path: Path) -> tuple[str | None, str]:
    """Code as-is; '#' lines are comments there, not headings, so the title is the file name."""
    return None, _read_text(path)


# --------------------------------------------------------------------------- HTML

_HTML_DROP_TAGS = frozenset(
    "script style noscript nav aside form button select input textarea svg canvas iframe "
    "template object embed head link meta footer".split()
)
_HTML_DROP_OUTSIDE_MAIN = frozenset({"header"})  # inside <main>/<article> it often holds the <h1>
_HTML_ANCHOR_MARKS = frozenset({"#", "¶", "§", "🔗"})  # "permalink" anchors next to headings
_HTML_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_HTML_DROP_CLASS_TOKENS = frozenset(
    "nav navbar navigation menu sidebar side-bar breadcrumb breadcrumbs toc table-of-contents "
    "site-header site-footer skip-link cookie-banner cookie-notice header-anchor headerlink anchor-link "
    "page-edit edit-link".split()
)
_HTML_BLOCK_TAGS = frozenset(
    "address article blockquote body dd details dialog div dl dt fieldset figcaption figure "
    "footer header hgroup hr li main ol p section summary ul caption".split()
)
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_MIN_MAIN_CONTENT_CHARS = 200
_BLOCK_MARK = "\x00"  # stands for a paragraph break until whitespace is tidied
_LINE_MARK = "\x01"  # stands for a <br> line break
_PRE_MARK = re.compile("\x02(\\d+)\x02")


def _html_parser_name() -> str:
    try:
        import lxml  # noqa: F401
    except ImportError:
        return "html.parser"
    return "lxml"


def _parse_html(markup: str | bytes) -> Any:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        return BeautifulSoup(markup, _html_parser_name())


def _is_boilerplate(tag: Any, inside_main: bool) -> bool:
    name = tag.name
    if name in _HTML_DROP_TAGS or (not inside_main and name in _HTML_DROP_OUTSIDE_MAIN):
        return True
    attrs = tag.attrs or {}
    if attrs.get("role") in _HTML_DROP_ROLES or attrs.get("aria-hidden") == "true" or "hidden" in attrs:
        return True
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    tokens = {token.lower() for token in classes}
    element_id = attrs.get("id")
    if isinstance(element_id, str):
        tokens.add(element_id.lower())
    if not tokens.isdisjoint(_HTML_DROP_CLASS_TOKENS):
        return True
    return name == "a" and tag.get_text().strip() in _HTML_ANCHOR_MARKS


def _main_content_root(soup: Any) -> tuple[Any, bool]:
    """The <main>/<article> element when it holds real content, else <body>: skips site chrome."""
    for candidate in (soup.find("main"), soup.find(attrs={"role": "main"}), soup.find("article")):
        if candidate is not None and len(candidate.get_text(" ", strip=True)) >= _MIN_MAIN_CONTENT_CHARS:
            return candidate, True
    return (soup.body or soup), False


class _HtmlTextWriter:
    """Walks the element tree and writes markdown-like text (headings, lists, tables, code fences)."""

    def __init__(self, inside_main: bool) -> None:
        self.inside_main = inside_main
        self.parts: list[str] = []
        self.pre_blocks: list[str] = []

    def write(self, node: Any) -> None:
        from bs4 import NavigableString, Tag
        from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

        skipped_strings = (Comment, Declaration, Doctype, ProcessingInstruction)
        stack: list[Any] = [node]
        while stack:  # iterative: deep nesting must not hit the recursion limit
            item = stack.pop()
            if isinstance(item, str) and not isinstance(item, Tag):
                if isinstance(item, NavigableString) and not isinstance(item, skipped_strings):
                    self.parts.append(str(item))
                elif not isinstance(item, NavigableString):
                    self.parts.append(item)  # a literal mark pushed below
                continue
            if not isinstance(item, Tag) or _is_boilerplate(item, self.inside_main):
                continue
            name = item.name
            if name == "br":
                self.parts.append(_LINE_MARK)
            elif name == "pre":
                self._write_pre(item)
            elif name == "table":
                self._write_table(item)
            else:
                opening, closing = self._marks(name)
                self.parts.append(opening)
                stack.append(closing)
                stack.extend(reversed(list(item.children)))

    @staticmethod
    def _marks(name: str) -> tuple[str, str]:
        if name in _HTML_HEADINGS:
            return f"{_BLOCK_MARK}{'#' * _HTML_HEADINGS[name]} ", _BLOCK_MARK
        if name == "li":
            return f"{_LINE_MARK}- ", ""
        if name in _HTML_BLOCK_TAGS:
            return _BLOCK_MARK, _BLOCK_MARK
        return "", ""

    def _write_pre(self, tag: Any) -> None:
        code = tag.get_text().strip("\n")
        if code.strip():
            self.pre_blocks.append(f"```\n{code}\n```")
            self.parts.append(f"{_BLOCK_MARK}\x02{len(self.pre_blocks) - 1}\x02{_BLOCK_MARK}")

    def _write_table(self, table: Any) -> None:
        rows = []
        for row in table.find_all("tr"):
            cell_tags = row.find_all(["td", "th"])
            cells = [_one_line(cell.get_text(" ")).replace("|", "\\|") for cell in cell_tags]
            if any(cells):
                rows.append("| " + " | ".join(cells) + " |")
                if len(rows) == 1 and all(cell.name == "th" for cell in cell_tags):
                    rows.append("|" + " --- |" * len(cells))  # header row, as in markdown
        if rows:
            caption = table.find("caption")
            if caption is not None:
                rows.insert(0, _one_line(caption.get_text(" ")))
            self.parts.append(_BLOCK_MARK + _LINE_MARK.join(rows) + _BLOCK_MARK)

    def text(self) -> str:
        raw = "".join(self.parts)
        # HTML whitespace is not layout: collapse it, then turn the marks into real breaks.
        raw = _WHITESPACE_RUN.sub(" ", raw)
        raw = re.sub(f" *{_LINE_MARK} *", "\n", raw)
        raw = re.sub(f"[ \n]*{_BLOCK_MARK}[ \n{_BLOCK_MARK}]*", "\n\n", raw)
        raw = re.sub(r"\n{3,}", "\n\n", raw).strip()
        return _PRE_MARK.sub(lambda match: self.pre_blocks[int(match.group(1))], raw)


def _html_title(soup: Any) -> str | None:
    for tag in (soup.title, soup.find("h1")):
        if tag is not None:
            title = _one_line(tag.get_text(" "))
            if title:
                return title
    return None


def html_to_text(markup: str | bytes) -> tuple[str | None, str]:
    """(title, main text) of an HTML page, dropping navigation, headers, footers, scripts."""
    soup = _parse_html(markup)
    title = _html_title(soup)
    root, inside_main = _main_content_root(soup)
    writer = _HtmlTextWriter(inside_main)
    writer.write(root)
    return title, writer.text()


def _read_html(path: Path) -> tuple[str | None, str]:
    return html_to_text(_read_text(path))


# --------------------------------------------------------------------------- PDF


def _read_pdf(path: Path) -> tuple[str | None, str]:
    """Text layer of every page; an image-only or password-protected PDF is skipped."""
    if not _read_head(path, 1024).lstrip().startswith(b"%PDF"):
        raise _Skip("corrupt PDF: no %PDF header")
    with _quiet_logger("pypdf"):  # its repair notes would drown the one line per skipped file
        return _read_pdf_pages(path)


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's warnings for the duration of one file."""
    library_logger = logging.getLogger(name)
    previous = library_logger.level
    library_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        library_logger.setLevel(previous)


def _read_pdf_pages(path: Path) -> tuple[str | None, str]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # owner-password-only PDFs open with an empty password
            except (DependencyError, NotImplementedError) as error:
                raise _Skip(f"encrypted PDF ({error})") from error
            if not opened:
                raise _Skip("encrypted PDF")
        title = _pdf_title(reader)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except FileNotDecryptedError as error:
        raise _Skip("encrypted PDF") from error
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, OSError) as error:
        raise _Skip(f"corrupt PDF: {_detail(error)}") from error
    text = "\n\n".join(page for page in pages if page)
    if not text.strip():
        raise _Skip("no text layer in PDF (scanned or image-only?)")
    return title, text


def _pdf_title(reader: Any) -> str | None:
    try:
        metadata = reader.metadata
    except Exception:  # broken metadata must not lose the text
        return None
    title = metadata.title if metadata is not None else None
    return _one_line(str(title)) or None if title else None


def _read_head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise _Skip(f"unreadable file: {error.strerror or error}") from error


def _detail(error: BaseException) -> str:
    message = _one_line(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# --------------------------------------------------------------------------- DOCX


def _refuse_non_zip_office_file(path: Path, kind: str) -> None:
    head = _read_head(path, 8)
    if not head:
        raise _Skip("empty file")
    if head.startswith(_OLE_MAGIC):
        raise _Skip(f"encrypted {kind} (or legacy binary Office format)")
    if not head.startswith(b"PK"):
        raise _Skip(f"corrupt {kind}: not a zip container")


def _read_docx(path: Path) -> tuple[str | None, str]:
    """Paragraphs and tables in body order; Word headings become markdown headings."""
    import docx

    _refuse_non_zip_office_file(path, "DOCX")
    try:
        document = docx.Document(str(path))
        blocks = [_docx_block(item) for item in document.iter_inner_content()]
        title = _one_line(document.core_properties.title or "") or None
    except Exception as error:  # python-docx raises many types on damaged packages
        raise _Skip(f"corrupt DOCX: {_detail(error)}") from error
    text = "\n\n".join(block for block in blocks if block.strip())
    if not text.strip():
        raise _Skip("no text in DOCX")
    return title or _heading_title(text), text


def _docx_block(item: Any) -> str:
    from docx.table import Table

    if isinstance(item, Table):
        return _docx_table(item)
    style = (item.style.name if item.style is not None else "") or ""
    text = item.text.strip()
    if not text:
        return ""
    if style == "Title":
        return f"# {text}"
    heading = re.fullmatch(r"Heading (\d)", style)
    if heading:
        return f"{'#' * min(int(heading.group(1)) + 1, 6)} {text}"
    if style.startswith("List"):
        return f"- {text}"
    return text


def _docx_table(table: Any) -> str:
    rows = []
    for row in table.rows:
        cells = [_one_line(cell.text).replace("|", "\\|") for cell in row.cells]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- EPUB


def _read_epub(path: Path) -> tuple[str | None, str]:
    """Chapters in reading (spine) order, each converted like an HTML page."""
    _refuse_non_zip_office_file(path, "EPUB")
    try:
        with zipfile.ZipFile(path) as archive:
            if _epub_is_drm_encrypted(archive):
                raise _Skip("encrypted EPUB (DRM)")
        from ebooklib import epub

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(str(path), options={"ignore_ncx": True})
        chapters = []
        for item_id, _linear in book.spine:
            item = book.get_item_with_id(item_id)
            if item is None:
                continue
            _, chapter = html_to_text(item.get_content())
            if chapter.strip():
                chapters.append(chapter)
        titles = book.get_metadata("DC", "title")
    except _Skip:
        raise
    except Exception as error:  # ebooklib raises many types on damaged books
        raise _Skip(f"corrupt EPUB: {_detail(error)}") from error
    text = "\n\n".join(chapters)
    if not text.strip():
        raise _Skip("no text in EPUB")
    title = _one_line(str(titles[0][0])) if titles and titles[0] and titles[0][0] else None
    return title or None, text


def _epub_is_drm_encrypted(archive: zipfile.ZipFile) -> bool:
    """encryption.xml also lists obfuscated fonts; only encrypted content documents mean DRM."""
    try:
        manifest = archive.read("META-INF/encryption.xml").decode("utf-8", "replace")
    except KeyError:
        return False
    uris = re.findall(r'URI="([^"]+)"', manifest)
    return any(uri.lower().endswith((".html", ".xhtml", ".htm")) for uri in uris)


# --------------------------------------------------------------------------- JSON / CSV

_PREFERRED_JSON_KEYS = (
    "title", "name", "heading", "question", "text", "content", "body", "description",
    "summary", "abstract", "answer", "message", "comment", "caption",
)  # fmt: skip
_PREFERRED_JSON_KEY_SET = frozenset(_PREFERRED_JSON_KEYS)


def _json_text(value: Any) -> list[str]:
    """Paragraphs of text found in a JSON value; text-like keys win over the rest."""
    paragraphs: list[str] = []
    stack: list[Any] = [value]
    while stack:  # iterative: deep JSON must not hit the recursion limit
        item = stack.pop()
        if isinstance(item, str):
            if item.strip():
                paragraphs.append(item.strip())
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(_json_object_parts(item)))
    return paragraphs


def _json_object_parts(obj: dict[str, Any]) -> list[Any]:
    preferred = [key for key in _PREFERRED_JSON_KEYS if isinstance(obj.get(key), str) and obj[key].strip()]
    nested = [value for value in obj.values() if isinstance(value, (dict, list))]
    if preferred:
        return [obj[key] for key in preferred] + nested
    fields = [
        f"{key}: {value.strip()}"
        for key, value in obj.items()
        if isinstance(value, str) and value.strip() and key not in _PREFERRED_JSON_KEY_SET
    ]
    return (["\n".join(fields)] if fields else []) + nested


def _json_title(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("title"), str):
        return _one_line(value["title"]) or None
    return None


def _read_json(path: Path) -> tuple[str | None, str]:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise _Skip(f"corrupt JSON: {error}") from error
    except RecursionError as error:  # the json module decodes nested values recursively
        raise _Skip("JSON nested too deeply to read") from error
    text = "\n\n".join(_json_text(value))
    if not text.strip():
        raise _Skip("no text in JSON")
    return _json_title(value), text


def _read_jsonl(path: Path) -> tuple[str | None, str]:
    paragraphs: list[str] = []
    bad_lines = total_lines = 0
    for line in _read_text(path).splitlines():
        if not line.strip():
            continue
        total_lines += 1
        try:
            paragraphs.extend(_json_text(json.loads(line)))
        except (json.JSONDecodeError, RecursionError):
            bad_lines += 1
    if total_lines and bad_lines == total_lines:
        raise _Skip("corrupt JSONL: no line is valid JSON")
    if bad_lines:
        logger.warning("%s: ignored %d of %d lines that are not valid JSON", path.name, bad_lines, total_lines)
    text = "\n\n".join(paragraphs)
    if not text.strip():
        raise _Skip("no text in JSONL")
    return None, text


def _read_csv(path: Path) -> tuple[str | None, str]:
    """One paragraph per row, "column: value; ..." when the first row is a header."""
    text = _read_text(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(text)
    try:
        rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if any(cell.strip() for cell in row)]
    except csv.Error as error:
        raise _Skip(f"corrupt CSV: {error}") from error
    if not rows:
        raise _Skip("empty file")
    header = rows[0] if _is_header_row(rows[0]) and len(rows) > 1 else None
    body = rows[1:] if header else rows
    rendered = [_csv_row_text(row, header) for row in body]
    return None, "\n\n".join(row for row in rendered if row)


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:_SNIFF_BYTES], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _is_header_row(row: list[str]) -> bool:
    cells = [cell.strip() for cell in row]
    if not all(cells) or len(set(cells)) != len(cells):
        return False
    return not any(re.fullmatch(r"[-+]?[\d.,]+%?", cell) for cell in cells)


def _csv_row_text(row: list[str], header: list[str] | None) -> str:
    cells = [" ".join(cell.split()) for cell in row]
    if header is None:
        return " | ".join(cell for cell in cells if cell)
    named = [f"{name.strip()}: {cell}" for name, cell in zip(header, cells) if cell]
    named += [cell for cell in cells[len(header) :] if cell]
    return "; ".join(named)


# --------------------------------------------------------------------------- dispatch

Reader = Callable[[Path], "tuple[str | None, str]"]

_MARKUP_EXTENSIONS = (".txt", ".text", ".md", ".markdown", ".mdx", ".rst", ".adoc", ".asciidoc", ".org")
_SOURCE_EXTENSIONS = tuple(
    "." + ext
    for ext in (
        "py pyi rs js mjs cjs jsx ts tsx go c h cc cpp cxx hpp hh hxx java kt kts scala swift m mm rb php pl pm "
        "lua r jl cs fs vb dart ex exs erl hs ml clj sol move vy zig nim sh bash zsh fish ps1 bat cmd "
        "toml yaml yml ini cfg conf properties env sql graphql gql proto thrift cmake mk make gradle "
        "xml xsd tex bib css scss less vue svelte ipynb log diff patch"
    ).split()
)
READERS: dict[str, Reader] = {
    **{ext: _read_markup_text for ext in _MARKUP_EXTENSIONS},
    **{ext: _read_source_code for ext in _SOURCE_EXTENSIONS},
    ".html": _read_html,
    ".htm": _read_html,
    ".xhtml": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
    ".epub": _read_epub,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".ndjson": _read_jsonl,
    ".csv": _read_csv,
    ".tsv": _read_csv,
}
SUPPORTED_EXTENSIONS = frozenset(READERS)
# Known non-text formats are refused without reading them.
_BINARY_EXTENSIONS = frozenset(
    "." + ext
    for ext in (
        "png jpg jpeg gif bmp tif tiff ico webp svg heic psd mp3 wav flac ogg m4a mp4 mkv mov avi webm "
        "zip gz tgz bz2 xz 7z rar tar zst jar war whl egg exe dll so dylib o a lib bin pyc pyo class "
        "woff woff2 ttf otf eot sqlite db parquet feather arrow npy npz pt pth safetensors onnx gguf pkl "
        "doc xls xlsx ppt pptx odt ods odp"
    ).split()
)


def _read_unknown(path: Path) -> tuple[str | None, str]:
    """Unknown extension: text-like content is read as text, anything else is refused."""
    return _read_markup_text(path)


def _read_one(path: Path, relative: str) -> Document | SkippedFile:
    suffix = path.suffix.lower()
    try:
        not_regular = regular_file(path)
        if not_regular:
            raise _Skip(not_regular)
        if suffix in _BINARY_EXTENSIONS:
            raise _Skip(f"binary file ({suffix})")
        reader = READERS.get(suffix, _read_unknown)
        title, text = reader(path)
        if not text.strip():
            raise _Skip("empty file")
    except _Skip as skip:
        return SkippedFile(path=relative, reason=str(skip))
    except Exception as error:  # a reader bug must cost one file, not the run
        logger.debug("unexpected error reading %s", relative, exc_info=True)
        return SkippedFile(path=relative, reason=f"unreadable: {_detail(error)}")
    return Document(path=relative, title=title or _stem(relative), text=text)


def iter_documents(input_dir: Path) -> Iterator[Document | SkippedFile]:
    """Walk input_dir recursively in sorted order (deterministic), yield one item per file.

    Hidden files/folders (starting with '.') are ignored silently. Streams: one file in
    memory at a time. Never raises for a bad file: it becomes a SkippedFile (and one warning).
    """
    for entry in walk_input(Path(input_dir)):
        item = _read_one(entry.path, entry.relative) if entry.readable else SkippedFile(entry.relative, entry.reason)
        if isinstance(item, SkippedFile):
            logger.warning("skipped %s: %s", item.path, item.reason)
        yield item


def iter_document_files(input_dir: Path) -> Iterator[tuple[Path, str]]:
    """The files iter_documents would read, as (path, relative path), without reading them.

    For callers that decide per file whether it needs reading at all (an index
    that skips unchanged files)."""
    return ((entry.path, entry.relative) for entry in walk_input(Path(input_dir)) if entry.readable)


def read_document(path: Path, relative: str) -> Document | SkippedFile:
    """One file, read exactly as iter_documents reads it (nothing is logged)."""
    return _read_one(Path(path), relative)


def check_something_readable(input_dir: Path) -> None:
    """Raise InputError, before a run makes anything, when no file can be read.

    Reads files only until the first readable one (usually the first file), and
    logs nothing on the way: the run that follows logs each skipped file once.
    When nothing is readable, read_documents gives the full account.
    """
    for path, relative in iter_document_files(input_dir):
        if isinstance(_read_one(path, relative), Document):
            return
    read_documents(input_dir)


def read_documents(input_dir: Path) -> tuple[list[Document], list[SkippedFile]]:
    """All documents of input_dir, plus what was skipped; InputError when nothing is readable."""
    input_dir = Path(input_dir)
    if not input_dir.exists():
        raise InputError(f"Input folder {input_dir} does not exist.")
    if not input_dir.is_dir():
        raise InputError(f"Input path {input_dir} is not a folder.")
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    for item in iter_documents(input_dir):
        (documents if isinstance(item, Document) else skipped).append(item)
    if not documents:
        raise InputError(_nothing_readable_message(input_dir, skipped))
    return documents, skipped


def _nothing_readable_message(input_dir: Path, skipped: list[SkippedFile]) -> str:
    if not skipped:
        return f"Input folder {input_dir} holds no files (hidden files are ignored)."
    reasons = Counter(item.reason for item in skipped)
    summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    return f"Input folder {input_dir} holds nothing readable: {len(skipped)} file(s) skipped ({summary})."
