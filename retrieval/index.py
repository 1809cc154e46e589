"""The on-disk search index: one SQLite file with FTS5 tables (BM25, porter stemming).

Three views of the same chunks are searched, and their BM25 scores, each
divided by its best score for the question, are added up:

- chunk_fts:    the chunk's document title and path (weight 0.3), its heading
                trail (0.3), its text (1.0) and its neighbours' text (0.2);
- heading_fts:  the headings inside the chunk (added with weight 0.2);
- document_fts: the chunk's whole document (added with weight 0.2), so that a
                chunk of the document that is about the subject wins over a
                passing mention elsewhere.

The weights were chosen on the tuning half of the real questions in
../shared/real_generations and checked on the other half
(benchmarks/bench_retrieval.py; the README has the figures).

Updates are incremental and atomic: a document whose fingerprint is unchanged
is not read again, a changed one is replaced, a removed one drops out, all in
one transaction, so a reader never sees half an update and a killed update
leaves the old index whole.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from generation_functions.errors import InputError
from retrieval.corpus import Listing, SourceDocument
from retrieval.text import fts_query, headings, path_words

FORMAT_VERSION = "2"
CHUNK_COLUMN_WEIGHTS = (0.3, 0.3, 1.0, 0.2)  # title+path, heading trail, text, neighbours
HEADING_WEIGHT = 0.2
DOCUMENT_WEIGHT = 0.2
CANDIDATES = 100  # best chunks taken from each view before the views are combined

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
    fingerprint TEXT NOT NULL, readable INTEGER NOT NULL, ordinal INTEGER NOT NULL DEFAULT 0
);
-- Every chunk of every document; only the first copy of a text (in reading order, as
-- the pipeline's chunker keeps it) is `searchable` and has rows in the FTS tables.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL, position INTEGER NOT NULL, key TEXT NOT NULL,
    text TEXT NOT NULL, trail TEXT NOT NULL, searchable INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id, position);
CREATE INDEX IF NOT EXISTS chunks_by_key ON chunks(key);
-- Contentless: the text lives once, in `chunks`. A row is removed by giving FTS5 the values it
-- was indexed with ('delete'), which are rebuilt from `chunks` and `documents` exactly as inserted.
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5(
    title, trail, body, neighbours, content='', tokenize='porter unicode61'
);
CREATE VIRTUAL TABLE IF NOT EXISTS heading_fts USING fts5(headings, content='', tokenize='porter unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS document_fts USING fts5(title, body, content='', tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS vectors (
    model TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, key)
);
"""
_ROW_TABLES = ("documents", "chunks", "vectors")
_FTS_TABLES = ("chunk_fts", "heading_fts", "document_fts")


@dataclass(frozen=True)
class Hit:
    """One chunk found for a question."""

    key: str  # the pipeline's chunk key (sha256 of the text)
    source: str  # the document's path, as in the datasets' source_filename
    title: str
    position: int  # the chunk's index within its document
    text: str
    score: float  # higher is better; comparable within one search only

    @property
    def label(self) -> str:
        return f"{self.source}, chunk {self.position}"


@dataclass
class UpdateStats:
    documents: int = 0  # readable documents in the index after the update
    chunks: int = 0
    added: int = 0  # documents read and indexed now (new or changed)
    unchanged: int = 0
    removed: int = 0
    unreadable: int = 0  # files the reader skipped (binary, empty, corrupt)
    seconds: float = 0.0
    changed_paths: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.chunks} chunks from {self.documents} documents "
            f"({self.added} indexed now, {self.unchanged} unchanged, {self.removed} removed"
            + (f", {self.unreadable} unreadable" if self.unreadable else "")
            + f"; {self.seconds:.2f} s)"
        )


class RetrievalIndex:
    """A search index in one SQLite file. Safe to share between threads (one lock)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._connect()
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError:
                # Not an index at all (a damaged or foreign file): it is only a cache, so start a new one.
                for damaged in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                    damaged.unlink(missing_ok=True)
                self._db = self._connect()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise InputError(f"cannot open the search index {self.path}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        # timeout: a second chat updating the same index waits for the first instead of failing.
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            self._db = db
            self._ensure_schema()
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "RetrievalIndex":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------ updating

    def update(self, listings: Iterable[Listing], source: str) -> UpdateStats:
        """Bring the index in line with `listings` (every document the source holds now, in reading order).

        `source` names what the chunks come from ("input" or "output"); an index
        built from another source, or by another version of this code, is rebuilt.
        """
        try:
            return self._update(listings, source)
        except sqlite3.Error as exc:  # a full disk, a read-only folder, a damaged file
            raise InputError(f"cannot update the search index {self.path}: {exc} (deleting the file rebuilds it)") from None

    def _update(self, listings: Iterable[Listing], source: str) -> UpdateStats:
        started = time.monotonic()
        stats = UpdateStats()
        with self._lock, self._transaction():
            self._reset_if_foreign(source)
            stored = {path: (doc_id, fingerprint) for doc_id, path, fingerprint in self._db.execute(
                "SELECT id, path, fingerprint FROM documents")}
            order: list[str] = []
            touched: set[str] = set()  # chunk texts whose first copy may have moved
            for listing in listings:
                order.append(listing.path)
                old = stored.get(listing.path)
                if old is not None and old[1] == listing.fingerprint:
                    stats.unchanged += 1
                    continue
                if old is not None:
                    touched |= self._delete_document(old[0])
                touched |= self._add_document(listing, listing.read(), stats)
            for path in stored.keys() - set(order):
                touched |= self._delete_document(stored[path][0])
                stats.removed += 1
            self._db.executemany("UPDATE documents SET ordinal = ? WHERE path = ?", list(enumerate(order)))
            for key in touched:
                self._choose_searchable_copy(key)
            self._db.execute("DELETE FROM vectors WHERE key NOT IN (SELECT key FROM chunks)")
        if stats.added or stats.removed:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the update into the main file
        stats.documents, stats.chunks = self.counts()
        stats.unreadable = self._db.execute("SELECT count(*) FROM documents WHERE readable = 0").fetchone()[0]
        stats.seconds = time.monotonic() - started
        return stats

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _ensure_schema(self) -> None:
        """Create the tables; an index written by another version of this code is dropped and rebuilt."""
        has_meta = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        stored = self._db.execute("SELECT value FROM meta WHERE name = 'format'").fetchone() if has_meta else None
        if stored is not None and stored[0] != FORMAT_VERSION:
            for table in ("meta", *_ROW_TABLES, *_FTS_TABLES):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('format', ?)", (FORMAT_VERSION,))

    def _reset_if_foreign(self, source: str) -> None:
        """An index of another source (PATH.INPUT vs a finished OUTPUT) starts from empty."""
        stored = self._db.execute("SELECT value FROM meta WHERE name = 'source'").fetchone()
        if stored is not None and stored[0] == source:
            return
        for table in _ROW_TABLES:
            self._db.execute(f"DELETE FROM {table}")
        for table in _FTS_TABLES:
            self._db.execute(f"INSERT INTO {table}({table}) VALUES ('delete-all')")
        self._db.execute("INSERT OR REPLACE INTO meta(name, value) VALUES ('source', ?)", (source,))

    def _add_document(self, listing: Listing, document: Optional[SourceDocument], stats: UpdateStats) -> set[str]:
        readable = document is not None and bool(document.chunks)
        title = document.title if document is not None else listing.path
        # An unreadable file is remembered too, so that it is not read again until it changes.
        doc_id = self._db.execute(
            "INSERT INTO documents(path, title, fingerprint, readable) VALUES (?, ?, ?, ?)",
            (listing.path, title, listing.fingerprint, int(readable)),
        ).lastrowid
        if not readable:
            return set()
        stats.added += 1
        stats.changed_paths.append(listing.path)
        self._db.executemany(
            "INSERT INTO chunks(document_id, position, key, text, trail) VALUES (?, ?, ?, ?, ?)",
            [(doc_id, chunk.position, chunk.key, chunk.text, chunk.trail) for chunk in document.chunks],
        )
        self._db.execute("INSERT INTO document_fts(rowid, title, body) VALUES (?, ?, ?)", (doc_id, *self._document_fields(doc_id)))
        return {chunk.key for chunk in document.chunks}

    def _document_fields(self, doc_id: int) -> tuple[str, str]:
        title, path = self._db.execute("SELECT title, path FROM documents WHERE id = ?", (doc_id,)).fetchone()
        texts = [row[0] for row in self._db.execute("SELECT text FROM chunks WHERE document_id = ? ORDER BY position", (doc_id,))]
        return _label(title, path), "\n\n".join(texts)

    def _delete_document(self, doc_id: int) -> set[str]:
        rows = self._db.execute("SELECT id, key, searchable FROM chunks WHERE document_id = ?", (doc_id,)).fetchall()
        for chunk_id, _, searchable in rows:
            if searchable:
                self._unsearchable(chunk_id)
        readable = self._db.execute("SELECT readable FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
        if readable:
            self._db.execute(
                "INSERT INTO document_fts(document_fts, rowid, title, body) VALUES ('delete', ?, ?, ?)",
                (doc_id, *self._document_fields(doc_id)),
            )
        self._db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return {key for _, key, _ in rows}

    def _choose_searchable_copy(self, key: str) -> None:
        """The first copy of a text in reading order is the one searched, as the pipeline keeps the first."""
        copies = self._db.execute(
            "SELECT c.id, c.searchable FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.key = ? ORDER BY d.ordinal, c.position",
            (key,),
        ).fetchall()
        for number, (chunk_id, searchable) in enumerate(copies):
            if number == 0 and not searchable:
                self._searchable(chunk_id)
            elif number > 0 and searchable:
                self._unsearchable(chunk_id)

    def _searchable(self, chunk_id: int) -> None:
        fields, inner = self._chunk_fields(chunk_id)
        self._db.execute("INSERT INTO chunk_fts(rowid, title, trail, body, neighbours) VALUES (?, ?, ?, ?, ?)", (chunk_id, *fields))
        if inner:
            self._db.execute("INSERT INTO heading_fts(rowid, headings) VALUES (?, ?)", (chunk_id, inner))
        self._db.execute("UPDATE chunks SET searchable = 1 WHERE id = ?", (chunk_id,))

    def _unsearchable(self, chunk_id: int) -> None:
        fields, inner = self._chunk_fields(chunk_id)
        self._db.execute(
            "INSERT INTO chunk_fts(chunk_fts, rowid, title, trail, body, neighbours) VALUES ('delete', ?, ?, ?, ?, ?)",
            (chunk_id, *fields),
        )
        if inner:
            self._db.execute("INSERT INTO heading_fts(heading_fts, rowid, headings) VALUES ('delete', ?, ?)", (chunk_id, inner))
        self._db.execute("UPDATE chunks SET searchable = 0 WHERE id = ?", (chunk_id,))

    def _chunk_fields(self, chunk_id: int) -> tuple[tuple[str, str, str, str], str]:
        """What a chunk is indexed with: (title, trail, body, neighbours) and its headings.
        A pure function of rows that do not change while the chunk exists."""
        document_id, position, text, trail, title, path = self._db.execute(
            "SELECT c.document_id, c.position, c.text, c.trail, d.title, d.path FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            (chunk_id,),
        ).fetchone()
        neighbours = " ".join(row[0] for row in self._db.execute(
            "SELECT text FROM chunks WHERE document_id = ? AND position IN (?, ?) ORDER BY position",
            (document_id, position - 1, position + 1),
        ))
        inner = " ".join(heading for _, heading in headings(text))
        return (_label(title, path), trail, text, neighbours), inner

    # ------------------------------------------------------------ reading

    def counts(self) -> tuple[int, int]:
        """(readable documents, distinct chunk texts searched)."""
        with self._lock:
            documents = self._db.execute("SELECT count(*) FROM documents WHERE readable = 1").fetchone()[0]
            chunks = self._db.execute("SELECT count(*) FROM chunks WHERE searchable = 1").fetchone()[0]
        return documents, chunks

    def chunks(self) -> list[Hit]:
        """Every searched chunk (one per distinct text), in reading order, with score 0."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.key, d.path, d.title, c.position, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.searchable = 1 ORDER BY d.ordinal, c.position"
            ).fetchall()
        return [Hit(key, path, title, position, text, 0.0) for key, path, title, position, text in rows]

    def search(self, question: str, k: int, exclude_keys: Iterable[str] = ()) -> list[Hit]:
        """The k chunks that best match the question, best first; a chunk text found in
        several documents comes once. `exclude_keys` leaves chunks out (e.g. the one a
        question was written from, when asking whether any *other* chunk answers it)."""
        ranked = self.ranked_ids(question)
        return self.hits(ranked, k, exclude_keys)

    def ranked_ids(self, question: str) -> list[tuple[int, float]]:
        """(chunk id, score) for every candidate, best first."""
        match = fts_query(question)
        if not match:
            return []
        with self._lock:
            chunk_scores = self._scores("chunk_fts", match, CHUNK_COLUMN_WEIGHTS)
            heading_scores = self._scores("heading_fts", match, (1.0,))
            document_scores = self._scores("document_fts", match, (1.0, 1.0))
            candidates = set(chunk_scores) | set(heading_scores)
            documents = self._documents_of(candidates)
        combined = {
            chunk_id: chunk_scores.get(chunk_id, 0.0)
            + HEADING_WEIGHT * heading_scores.get(chunk_id, 0.0)
            + DOCUMENT_WEIGHT * document_scores.get(documents[chunk_id], 0.0)
            for chunk_id in candidates
        }
        return sorted(combined.items(), key=lambda item: (-item[1], item[0]))

    def _scores(self, table: str, match: str, weights: tuple[float, ...]) -> dict[int, float]:
        """BM25 of the best candidates, each divided by the best one (so views can be added)."""
        rank = f"bm25({table}, {', '.join(str(w) for w in weights)})"
        rows = self._db.execute(
            f"SELECT rowid, -{rank} FROM {table} WHERE {table} MATCH ? ORDER BY {rank} LIMIT {CANDIDATES}", (match,)
        ).fetchall()
        if not rows or rows[0][1] <= 0:
            return {}
        best = rows[0][1]
        return {rowid: score / best for rowid, score in rows}

    def _documents_of(self, chunk_ids: set[int]) -> dict[int, int]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        return dict(self._db.execute(f"SELECT id, document_id FROM chunks WHERE id IN ({marks})", tuple(chunk_ids)))

    def hits(self, ranked: list[tuple[int, float]], k: int, exclude_keys: Iterable[str] = ()) -> list[Hit]:
        """The first k of a ranking as Hits, one per distinct chunk text, skipping exclude_keys."""
        skip = set(exclude_keys)
        found: list[Hit] = []
        with self._lock:
            for chunk_id, score in ranked:
                hit = self._hit(chunk_id, score)
                if hit is None or hit.key in skip:
                    continue
                skip.add(hit.key)
                found.append(hit)
                if len(found) >= k:
                    break
        return found

    def _hit(self, chunk_id: int, score: float) -> Optional[Hit]:
        row = self._db.execute(
            "SELECT c.key, d.path, d.title, c.position, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            (chunk_id,),
        ).fetchone()
        return Hit(row[0], row[1], row[2], row[3], row[4], score) if row else None

    # ------------------------------------------------------------ vectors (optional dense search)

    def keys_without_vector(self, model: str) -> list[tuple[str, str]]:
        """(key, text) of every distinct chunk text that has no vector from `model` yet."""
        with self._lock:
            return self._db.execute(
                "SELECT key, text FROM chunks WHERE searchable = 1 "
                "AND key NOT IN (SELECT key FROM vectors WHERE model = ?) ORDER BY id",
                (model,),
            ).fetchall()

    def store_vectors(self, model: str, items: list[tuple[str, np.ndarray]]) -> None:
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(model, key, vector) VALUES (?, ?, ?)",
                [(model, key, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in items],
            )

    def vector_matrix(self, model: str) -> tuple[list[int], np.ndarray]:
        """(chunk ids, unit-length vectors, one row each) for the chunks `model` has embedded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.key = c.key AND v.model = ? "
                "WHERE c.searchable = 1 ORDER BY c.id",
                (model,),
            ).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        matrix = np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return [chunk_id for chunk_id, _ in rows], matrix / np.where(norms == 0, 1, norms)


def _label(title: str, path: str) -> str:
    """What the title field holds: the document's title and the words of its path."""
    return f"{title} {path_words(path)}"
