"""Every supported format is read into text; unreadable files become SkippedFile, never exceptions."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import pytest

from generation_functions.chunking import chunk_document, chunk_documents, split_text
from generation_functions.documents import Document, SkippedFile, iter_documents, read_documents
from generation_functions.errors import InputError
from tests.odd_trees import BAD_NAME_SHOWN, DEEP_FILE, SECRET, SKIPPED_REASONS, build_odd_tree, remove_tree

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "verus_corpus"
PARAGRAPH = "Verus uses a hybrid proof of power consensus that combines mining and staking."


def _read_one(folder: Path) -> Document | SkippedFile:
    items = list(iter_documents(folder))
    assert len(items) == 1, items
    return items[0]


def _document(folder: Path) -> Document:
    item = _read_one(folder)
    assert isinstance(item, Document), item
    return item


def _skipped(folder: Path) -> SkippedFile:
    item = _read_one(folder)
    assert isinstance(item, SkippedFile), item
    return item


# ----------------------------------------------------------------------------- builders


def _write_pdf(path: Path, lines: list[str], title: str | None = None, password: str | None = None) -> None:
    """A real PDF with a text layer, built with pypdf objects (no extra dependency)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    commands = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        commands.append(f"({escaped}) Tj T*")
    commands.append("ET")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(commands).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if title:
        writer.add_metadata({"/Title": title})
    if password:
        writer.encrypt(user_password=password, owner_password=password + "-owner")
    with path.open("wb") as handle:
        writer.write(handle)


def _write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Staking Guide"
    document.add_heading("Staking on Verus", level=1)
    document.add_paragraph(PARAGRAPH)
    document.add_paragraph("First step", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Coin", "Reward"
    table.cell(1, 0).text, table.cell(1, 1).text = "VRSC", "6"
    document.add_paragraph("Text after the table.")
    document.save(str(path))


def _write_epub(path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("verus-test")
    book.set_title("The Verus Book")
    book.set_language("en")
    chapters = []
    for number, body in enumerate(["<h1>Chapter One</h1><p>" + PARAGRAPH + "</p>", "<h1>Chapter Two</h1><p>Second.</p>"]):
        chapter = epub.EpubHtml(title=f"c{number}", file_name=f"c{number}.xhtml", lang="en")
        chapter.content = f"<html><body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = chapters
    epub.write_epub(str(path), book)


# ----------------------------------------------------------------------------- plain text


def test_markdown_title_path_and_text(tmp_path: Path) -> None:
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "staking.md").write_text(f"Intro line\n\n## Staking  Basics ##\n\n{PARAGRAPH}\n", encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.path == "wiki/staking.md"
    assert doc.title == "Staking Basics"
    assert PARAGRAPH in doc.text
    assert doc.textdetails == "Staking Basics (wiki/staking.md)"


def test_title_falls_back_to_stem_and_textdetails_is_path(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(PARAGRAPH, encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.title == "notes"
    assert doc.textdetails == "notes.txt"


def test_rst_title_from_underline(tmp_path: Path) -> None:
    (tmp_path / "guide.rst").write_text(f"Verus Guide\n===========\n\n{PARAGRAPH}\n", encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.title == "Verus Guide"
    assert PARAGRAPH in doc.text


def test_latin1_and_utf16_files_are_decoded(tmp_path: Path) -> None:
    french = "Le réseau Verus rémunère les mineurs et les détenteurs de pièces. Ça marche très bien, déjà à l'été. " * 3
    (tmp_path / "latin1.txt").write_bytes(french.encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes(french.encode("utf-16"))
    (tmp_path / "utf16le-nobom.txt").write_bytes(french.encode("utf-16-le"))
    (tmp_path / "utf8bom.txt").write_bytes(french.encode("utf-8-sig"))
    documents, skipped = read_documents(tmp_path)
    assert not skipped
    assert [doc.text.strip() for doc in documents] == [french.strip()] * 4


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Grüße aus München: 5 € or £5 – “quoted” text… and more.", "cp1252"),
        ("¿Qué es Verus? ¡Una red que recompensa a los mineros y a los poseedores de monedas! " * 3, "cp1252"),
        ("Sieć Verus nagradza górników i posiadaczy monet. Zażółć gęślą jaźń, to działa dobrze. " * 3, "cp1250"),
        ("Сеть Verus вознаграждает майнеров и держателей монет. Это работает очень хорошо. " * 3, "cp1251"),
    ],
)
def test_legacy_code_pages_are_detected(tmp_path: Path, text: str, encoding: str) -> None:
    (tmp_path / "legacy.txt").write_bytes(text.encode(encoding))
    assert _document(tmp_path).text == text


def test_utf8_with_a_stray_byte_stays_utf8(tmp_path: Path) -> None:
    text = "Verus – “staking” café déjà vu. " * 5
    (tmp_path / "mixed.txt").write_bytes(text.encode("utf-8") + b" stray \xe9 byte")
    assert _document(tmp_path).text == text + " stray \ufffd byte"


def test_source_code_is_read_as_text_with_stem_title(tmp_path: Path) -> None:
    code = "# a comment, not a title\ndef stake(amount: int) -> int:\n    return amount * 2\n"
    (tmp_path / "stake.py").write_text(code, encoding="utf-8")
    (tmp_path / "config.yaml").write_text("chain: VRSC\nport: 27486\n", encoding="utf-8")
    documents, _ = read_documents(tmp_path)
    assert [(doc.path, doc.title, doc.text) for doc in documents] == [
        ("config.yaml", "config", "chain: VRSC\nport: 27486\n"),
        ("stake.py", "stake", code),
    ]


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    (tmp_path / "README").write_text(f"# Read me\n\n{PARAGRAPH}", encoding="utf-8")
    (tmp_path / "blob.weird").write_bytes(bytes(range(256)) * 20)
    documents, skipped = read_documents(tmp_path)
    assert [doc.path for doc in documents] == ["README"]
    assert documents[0].title == "Read me"
    assert skipped == [SkippedFile(path="blob.weird", reason="binary file")]


# ----------------------------------------------------------------------------- walking


def test_walk_is_sorted_recursive_and_ignores_hidden(tmp_path: Path) -> None:
    for relative in ["b.txt", "a/z.md", "a/b/c.txt", "c.txt", ".hidden.txt", ".git/config.txt", "a/.cache/x.txt"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"text of {relative}", encoding="utf-8")
    paths = [item.path for item in iter_documents(tmp_path)]
    assert paths == ["a/b/c.txt", "a/z.md", "b.txt", "c.txt"]


def test_iter_documents_is_lazy(tmp_path: Path) -> None:
    for number in range(3):
        (tmp_path / f"{number}.txt").write_text(f"document {number}", encoding="utf-8")
    stream = iter_documents(tmp_path)
    first = next(stream)
    assert isinstance(first, Document) and first.path == "0.txt"
    (tmp_path / "2.txt").unlink()  # a file removed mid-run is simply not seen or skipped, never raised
    rest = list(stream)
    assert [item.path for item in rest][:1] == ["1.txt"]



@pytest.fixture
def odd_input(tmp_path: Path):
    input_dir = tmp_path / "in"
    build_odd_tree(input_dir, tmp_path / "outside.txt")
    yield input_dir
    remove_tree(input_dir)  # too deep for pytest's own clean-up


def test_odd_entries_are_read_or_skipped_with_a_reason(odd_input: Path) -> None:
    items = list(iter_documents(odd_input))
    read = {item.path: item for item in items if isinstance(item, Document)}
    skipped = {item.path: item.reason for item in items if isinstance(item, SkippedFile)}
    assert sorted(read) == sorted([BAD_NAME_SHOWN, DEEP_FILE, "inside_link.md", "plain.md"])
    assert skipped == SKIPPED_REASONS
    assert "identities" in read[BAD_NAME_SHOWN].text and "bridge" in read[DEEP_FILE].text
    assert all(SECRET not in item.text for item in read.values())
    json.dumps([item.path for item in items], ensure_ascii=False).encode("utf-8")  # every name is valid text


def test_a_link_to_a_file_inside_the_input_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(PARAGRAPH, encoding="utf-8")
    (tmp_path / "b.md").symlink_to(Path("docs") / "a.md")  # relative target
    documents, skipped = read_documents(tmp_path)
    assert [doc.path for doc in documents] == ["b.md", "docs/a.md"] and not skipped


def test_an_input_folder_reached_through_a_link_reads_its_own_files(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.md").write_text(PARAGRAPH, encoding="utf-8")
    (real / "b.md").symlink_to(real / "a.md")
    (tmp_path / "input").symlink_to(real, target_is_directory=True)
    documents, skipped = read_documents(tmp_path / "input")
    assert [doc.path for doc in documents] == ["a.md", "b.md"] and not skipped


def test_a_folder_that_cannot_be_listed_is_skipped_with_its_reason(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root lists every folder")
    (tmp_path / "a.md").write_text(PARAGRAPH, encoding="utf-8")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0)
    try:
        documents, skipped = read_documents(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [doc.path for doc in documents] == ["a.md"]
    assert [(item.path, item.reason) for item in skipped] == [("locked/", "cannot list folder: Permission denied")]


DOCUMENTS_LOGGER = "verustoolkit.documents"


def test_skipped_files_have_reasons_and_one_warning_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.md").write_text(PARAGRAPH, encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text(" \n\n\t ", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 500)
    with caplog.at_level(logging.WARNING, logger=DOCUMENTS_LOGGER):
        documents, skipped = read_documents(tmp_path)
    assert [doc.path for doc in documents] == ["good.md"]
    assert {item.path: item.reason for item in skipped} == {
        "binary.txt": "binary file",
        "blank.md": "empty file",
        "empty.txt": "empty file",
        "image.png": "binary file (.png)",
    }
    assert len([record for record in caplog.records if record.levelno == logging.WARNING]) == 4


def test_read_documents_refuses_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_documents(tmp_path / "nope")


def test_read_documents_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="not a folder"):
        read_documents(tmp_path / "file.txt")


def test_read_documents_refuses_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no files"):
        read_documents(tmp_path)


def test_read_documents_explains_when_nothing_is_readable(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"")
    (tmp_path / "b.txt").write_bytes(b"")
    (tmp_path / "c.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(InputError, match=r"3 file\(s\) skipped \(2 empty file, 1 binary file \(.bin\)\)"):
        read_documents(tmp_path)


# ----------------------------------------------------------------------------- HTML


def test_html_main_content_without_navigation(tmp_path: Path) -> None:
    html = f"""<!doctype html><html><head><title>Verus Staking</title>
    <style>body {{ color: red }}</style><script>var tracking = 1;</script></head>
    <body>
      <header><a href="/">Home</a> site banner</header>
      <nav><ul><li>Menu entry</li></ul></nav>
      <div class="sidebar">Sidebar links</div>
      <main>
        <h1>Staking</h1>
        <p>{PARAGRAPH}
           across   lines.</p>
        <ul><li>Item one</li><li>Item two</li></ul>
        <pre>verus -stake
  --flag</pre>
        <table><tr><th>Coin</th><th>Reward</th></tr><tr><td>VRSC</td><td>6</td></tr></table>
        <p>More text with a line<br>break and more words to reach a realistic length for main content.</p>
      </main>
      <footer>Copyright footer</footer>
    </body></html>"""
    (tmp_path / "page.html").write_text(html, encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.title == "Verus Staking"
    for unwanted in ["Home", "banner", "Menu entry", "Sidebar", "tracking", "color", "Copyright"]:
        assert unwanted not in doc.text
    assert "# Staking" in doc.text
    assert f"{PARAGRAPH} across lines." in doc.text
    assert "- Item one\n- Item two" in doc.text
    assert "```\nverus -stake\n  --flag\n```" in doc.text
    assert "| Coin | Reward |\n| --- | --- |\n| VRSC | 6 |" in doc.text
    assert "a line\nbreak" in doc.text


def test_html_drops_heading_anchors_and_footers_inside_main(tmp_path: Path) -> None:
    body = f"<p>{PARAGRAPH} {PARAGRAPH} {PARAGRAPH}</p>"
    html = f'<main><h1><a class="headerlink" href="#t">¶</a> Title</h1>{body}<footer>Edit this page</footer></main>'
    (tmp_path / "doc.html").write_text(html, encoding="utf-8")
    text = _document(tmp_path).text
    assert text.startswith("# Title\n\n")
    assert "Edit this page" not in text and "¶" not in text


def test_html_in_a_legacy_encoding(tmp_path: Path) -> None:
    html = "<html><head><title>Café</title></head><body><p>Résumé – “quoted” text.</p></body></html>"
    (tmp_path / "legacy.html").write_bytes(html.encode("cp1252"))
    doc = _document(tmp_path)
    assert (doc.title, doc.text) == ("Café", "Résumé – “quoted” text.")


def test_html_without_main_uses_body_minus_chrome(tmp_path: Path) -> None:
    html = f"<html><body><nav>Navigation</nav><div><p>{PARAGRAPH}</p></div><footer>Foot</footer></body></html>"
    (tmp_path / "page.htm").write_text(html, encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.text == PARAGRAPH
    assert doc.title == "page"


# ----------------------------------------------------------------------------- PDF


def test_pdf_text_layer_and_title(tmp_path: Path) -> None:
    _write_pdf(tmp_path / "paper.pdf", ["Verus Vision Paper", PARAGRAPH], title="The Verus Vision")
    doc = _document(tmp_path)
    assert doc.title == "The Verus Vision"
    assert "Verus Vision Paper" in doc.text
    assert " ".join(PARAGRAPH.split()) in " ".join(doc.text.split())


def test_encrypted_pdf_is_skipped(tmp_path: Path) -> None:
    _write_pdf(tmp_path / "secret.pdf", [PARAGRAPH], password="hunter2")
    assert _skipped(tmp_path).reason == "encrypted PDF"


def test_pdf_with_only_owner_password_is_read(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    _write_pdf(tmp_path / "plain.pdf", [PARAGRAPH])
    writer = PdfWriter(clone_from=PdfReader(str(tmp_path / "plain.pdf")))
    writer.encrypt(user_password="", owner_password="owner")
    (tmp_path / "plain.pdf").unlink()
    with (tmp_path / "restricted.pdf").open("wb") as handle:
        writer.write(handle)
    assert PARAGRAPH.split()[0] in _document(tmp_path).text


def test_corrupt_pdf_is_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    with caplog.at_level(logging.WARNING):
        assert _skipped(tmp_path).reason.startswith("corrupt PDF")
    assert [record.name for record in caplog.records] == [DOCUMENTS_LOGGER]


def test_pdf_without_text_layer_is_skipped(tmp_path: Path) -> None:
    _write_pdf(tmp_path / "scan.pdf", [])
    assert _skipped(tmp_path).reason.startswith("no text layer")


def test_non_pdf_with_pdf_extension_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "fake.pdf").write_text("just text", encoding="utf-8")
    assert _skipped(tmp_path).reason.startswith("corrupt PDF")


# ----------------------------------------------------------------------------- DOCX


def test_docx_paragraphs_headings_and_tables(tmp_path: Path) -> None:
    _write_docx(tmp_path / "guide.docx")
    doc = _document(tmp_path)
    assert doc.title == "Staking Guide"
    assert "## Staking on Verus" in doc.text
    assert PARAGRAPH in doc.text
    assert "- First step" in doc.text
    table_at = doc.text.index("| Coin | Reward |\n| VRSC | 6 |")
    assert table_at < doc.text.index("Text after the table.")


def test_corrupt_docx_is_skipped(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "broken.docx", "w") as archive:
        archive.writestr("word/document.xml", "<not really word")
    assert _skipped(tmp_path).reason.startswith("corrupt DOCX: ")


def test_truncated_docx_is_skipped(tmp_path: Path) -> None:
    _write_docx(tmp_path / "whole.docx")
    data = (tmp_path / "whole.docx").read_bytes()
    (tmp_path / "whole.docx").unlink()
    (tmp_path / "cut.docx").write_bytes(data[: len(data) // 2])
    assert _skipped(tmp_path).reason.startswith("corrupt DOCX: ")


def test_encrypted_docx_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    assert _skipped(tmp_path).reason.startswith("encrypted DOCX")


# ----------------------------------------------------------------------------- EPUB


def test_epub_chapters_in_order(tmp_path: Path) -> None:
    _write_epub(tmp_path / "book.epub")
    doc = _document(tmp_path)
    assert doc.title == "The Verus Book"
    assert doc.text.index("Chapter One") < doc.text.index(PARAGRAPH) < doc.text.index("Chapter Two")


def test_corrupt_epub_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.epub").write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    assert _skipped(tmp_path).reason.startswith("corrupt EPUB")


def test_drm_epub_is_skipped(tmp_path: Path) -> None:
    _write_epub(tmp_path / "book.epub")
    with zipfile.ZipFile(tmp_path / "book.epub", "a") as archive:
        archive.writestr("META-INF/encryption.xml", '<encryption><CipherReference URI="EPUB/c0.xhtml"/></encryption>')
    assert _skipped(tmp_path).reason == "encrypted EPUB (DRM)"


# ----------------------------------------------------------------------------- JSON / CSV


def test_json_prefers_text_fields(tmp_path: Path) -> None:
    data = {
        "title": "Verus FAQ",
        "id": "a1b2c3",
        "entries": [
            {"question": "What is staking?", "answer": "Earning by holding.", "id": 7, "slug": "staking"},
            {"kind": "note", "author": "Mike"},
        ],
    }
    (tmp_path / "faq.json").write_text(json.dumps(data), encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.title == "Verus FAQ"
    assert doc.text == "Verus FAQ\n\nWhat is staking?\n\nEarning by holding.\n\nkind: note\nauthor: Mike"


def test_jsonl_reads_each_record_and_tolerates_bad_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"text": "First record."}), "{broken", json.dumps({"content": "Second record."})]
    (tmp_path / "data.jsonl").write_text("\n".join(lines), encoding="utf-8")
    assert _document(tmp_path).text == "First record.\n\nSecond record."


def test_json_nested_too_deeply_is_skipped_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert _skipped(tmp_path).reason == "JSON nested too deeply to read"


def test_corrupt_json_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"text": "unterminated', encoding="utf-8")
    assert _skipped(tmp_path).reason.startswith("corrupt JSON")


def test_csv_rows_rendered_with_header(tmp_path: Path) -> None:
    (tmp_path / "rewards.csv").write_text("coin,reward,note\nVRSC,6,block reward\nETH,0,\n", encoding="utf-8")
    doc = _document(tmp_path)
    assert doc.text == "coin: VRSC; reward: 6; note: block reward\n\ncoin: ETH; reward: 0"


def test_csv_without_header(tmp_path: Path) -> None:
    (tmp_path / "numbers.csv").write_text("1,2,3\n4,5,6\n", encoding="utf-8")
    assert _document(tmp_path).text == "1 | 2 | 3\n\n4 | 5 | 6"


# ----------------------------------------------------------------------------- all formats together


def test_every_format_reads_and_chunks(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(PARAGRAPH, encoding="utf-8")
    (tmp_path / "b.md").write_text(f"# B\n\n{PARAGRAPH}", encoding="utf-8")
    (tmp_path / "c.html").write_text(f"<p>{PARAGRAPH}</p>", encoding="utf-8")
    _write_pdf(tmp_path / "d.pdf", [PARAGRAPH])
    _write_docx(tmp_path / "e.docx")
    _write_epub(tmp_path / "f.epub")
    (tmp_path / "g.json").write_text(json.dumps({"text": PARAGRAPH}), encoding="utf-8")
    (tmp_path / "h.csv").write_text(f"text\n{PARAGRAPH}\n", encoding="utf-8")
    (tmp_path / "i.rs").write_text("fn main() { println!(\"verus\"); }", encoding="utf-8")
    documents, skipped = read_documents(tmp_path)
    assert not skipped
    assert len(documents) == 9
    for doc in documents:
        chunks = chunk_document(doc, 60)
        assert chunks and all(len(chunk.text) <= 60 for chunk in chunks)
    # The same paragraph in several files is generated from once.
    unique = list(chunk_documents(documents, 60))
    assert len({chunk.text for chunk in unique}) == len(unique)


# ----------------------------------------------------------------------------- real corpus


def test_verus_corpus_is_fully_read() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} not present")
    files = [path for path in CORPUS.rglob("*") if path.is_file() and not any(p.startswith(".") for p in path.relative_to(CORPUS).parts)]
    documents, skipped = read_documents(CORPUS)
    assert skipped == []
    assert len(documents) == len(files)
    for doc in documents:
        assert doc.text.strip()
        assert all(len(chunk) <= 2000 for chunk in split_text(doc.text, 2000))
