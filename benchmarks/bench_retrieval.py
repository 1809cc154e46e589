"""Retrieval over the real corpus: indexing time, query latency, memory, and recall@k on real questions.

Indexes ../shared/verus_corpus with the pipeline's reader and chunker (as chat.py
does), then searches every question of the development set in
../shared/real_generations (see retrieval_devset.py for how each question's
source chunk is found) and counts how often that chunk is among the first k.

Recall is reported on the tuning questions (the index's weights were chosen on
them), on the held-out questions (never used to choose anything) and on all,
next to a plain BM25 baseline: the same chunks in one FTS5 field, no stemming,
every word of the question joined by OR.

Usage: python benchmarks/bench_retrieval.py [--corpus DIR] [--generations DIR] [--chunk-size 1900]
                                            [--rounds 3] [--json FILE]
                                            [--embedding-base-url URL --embedding-model NAME]
Targets: index the 4 MB corpus in < 10 s on one core; median query < 20 ms; recall@5 >= 0.85.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from retrieval.corpus import list_input  # noqa: E402
from retrieval.index import Hit, RetrievalIndex  # noqa: E402
from retrieval.text import words  # noqa: E402
from retrieval_devset import DevQuestion, labelled, load_questions  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"
KS = (1, 5, 10)
Labelled = list[tuple[DevQuestion, frozenset[str]]]


def pin_to_one_core() -> str:
    """The targets are for one core; pin where the OS lets us."""
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def timed(action: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def indexing_figures(corpus: Path, chunk_size: int, workdir: Path) -> tuple[RetrievalIndex, dict]:
    """A fresh build, a no-op update, and an update after one document changed (on a copy)."""
    copy = workdir / "corpus"
    shutil.copytree(corpus, copy)
    index = RetrievalIndex(workdir / "retrieval.sqlite")
    stats, wall, cpu = timed(lambda: index.update(list_input(copy, chunk_size), "input"))
    figures = {"documents": stats.documents, "chunks": stats.chunks, "build_wall_s": wall, "build_cpu_s": cpu}
    _, figures["unchanged_update_s"], _ = timed(lambda: index.update(list_input(copy, chunk_size), "input"))
    changed = _largest_text_file(copy)
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nOne more paragraph about staking.\n", encoding="utf-8")
    one, figures["one_document_update_s"], _ = timed(lambda: index.update(list_input(copy, chunk_size), "input"))
    figures["one_document_update_reindexed"] = one.added
    figures["one_document"] = f"{changed.relative_to(copy)} ({changed.stat().st_size / 1e6:.1f} MB, the largest)"
    shutil.copy2(corpus / changed.relative_to(copy), changed)  # back to the original text
    index.update(list_input(copy, chunk_size), "input")
    figures["index_file_mb"] = sum(p.stat().st_size for p in workdir.glob("retrieval.sqlite*")) / 1e6
    return index, figures


def _largest_text_file(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.suffix in (".md", ".txt")), key=lambda p: p.stat().st_size)


def gold_keys(index: RetrievalIndex, generations: Path) -> tuple[Labelled, int]:
    chunks = index.chunks()
    mapped, unmapped = labelled(load_questions(generations), [chunk.text for chunk in chunks])
    return [(item, frozenset(chunks[i].key for i in gold)) for item, gold in mapped], unmapped


def recall(search: Callable[[str], Sequence[Hit]], questions: Labelled) -> dict:
    """recall@k per split: the share of questions whose gold chunk is among the first k."""
    found = {split: {k: 0 for k in KS} for split in ("tune", "held-out", "all")}
    counts = {"tune": 0, "held-out": 0, "all": 0}
    for item, gold in questions:
        keys = [hit.key for hit in search(item.question)]
        for split in (item.split, "all"):
            counts[split] += 1
            for k in KS:
                found[split][k] += any(key in gold for key in keys[:k])
    return {split: {"questions": counts[split], **{f"@{k}": found[split][k] / max(1, counts[split]) for k in KS}} for split in found}


def plain_bm25(chunks: list[Hit]) -> Callable[[str], list[Hit]]:
    """The baseline: one field, no stemming, no stopwords, every question word OR-ed."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE plain USING fts5(body, tokenize='unicode61')")
    db.executemany("INSERT INTO plain(rowid, body) VALUES (?, ?)", [(n, hit.text) for n, hit in enumerate(chunks)])

    def search(question: str) -> list[Hit]:
        terms = " OR ".join(f'"{word}"' for word in dict.fromkeys(words(question)))
        if not terms:
            return []
        rows = db.execute("SELECT rowid FROM plain WHERE plain MATCH ? ORDER BY bm25(plain) LIMIT 10", (terms,))
        return [chunks[rowid] for (rowid,) in rows]

    return search


def latency(search: Callable[[str], object], questions: Labelled, rounds: int) -> dict:
    times = []
    for _ in range(rounds):
        for item, _ in questions:
            started = time.perf_counter()
            search(item.question)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"queries": len(times), "median_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def hybrid_search(index: RetrievalIndex, base_url: str, model: str) -> tuple[Callable[[str], list[Hit]], Callable[[], None]]:
    """Lexical + embeddings (RRF) through a real /embeddings endpoint, for those who have one."""
    from retrieval.embeddings import EmbeddingClient, embed_missing
    from retrieval.search import Retriever

    loop = asyncio.new_event_loop()
    client = EmbeddingClient(base_url, model, os.environ.get("VERUSTOOLKIT_API_KEY", os.environ.get("OPENAI_API_KEY", "")))
    loop.run_until_complete(embed_missing(index, client, 64))
    retriever = Retriever(index, 10, client)

    def close() -> None:
        loop.run_until_complete(client.close())
        loop.close()

    return (lambda question: loop.run_until_complete(retriever.search(question, 10))), close


def report_lines(figures: dict) -> list[str]:
    index = figures["indexing"]
    lines = [
        f"corpus: {figures['corpus']} ({index['documents']} documents, {index['chunks']} chunks of <= {figures['chunk_size']} chars; {figures['cpu']})",
        f"indexing: {index['build_wall_s']:.2f} s wall, {index['build_cpu_s']:.2f} s CPU; unchanged rerun {index['unchanged_update_s']:.2f} s; "
        f"one document changed {index['one_document_update_s']:.2f} s ({index['one_document']}); "
        f"index file {index['index_file_mb']:.1f} MB",
        f"questions: {figures['questions']} with a gold chunk ({figures['unmapped']} without), "
        f"{figures['recall']['index']['tune']['questions']} tune / {figures['recall']['index']['held-out']['questions']} held-out",
        "",
        f"{'search':<10} {'split':<9} {'recall@1':>9} {'recall@5':>9} {'recall@10':>10}",
    ]
    for name, by_split in figures["recall"].items():
        for split in ("tune", "held-out", "all"):
            row = by_split[split]
            lines.append(f"{name:<10} {split:<9} {row['@1']:>9.3f} {row['@5']:>9.3f} {row['@10']:>10.3f}")
    lines.append("")
    for name, row in figures["latency"].items():
        lines.append(f"latency {name}: median {row['median_ms']:.2f} ms, p95 {row['p95_ms']:.2f} ms over {row['queries']} queries")
    lines.append(f"peak memory (RSS) of this process: {figures['peak_rss_mb']:.0f} MB")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "verus_corpus")
    parser.add_argument("--generations", type=Path, default=SHARED / "real_generations")
    parser.add_argument("--chunk-size", type=int, default=1900)
    parser.add_argument("--rounds", type=int, default=3, help="times each question is searched for the latency figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--embedding-base-url", help="also measure hybrid search with this /embeddings server")
    parser.add_argument("--embedding-model")
    args = parser.parse_args()
    for folder in (args.corpus, args.generations):
        if not folder.is_dir():
            print(f"skipped: {folder} is not there", file=sys.stderr)
            return 0
    figures = {"corpus": str(args.corpus), "chunk_size": args.chunk_size, "cpu": pin_to_one_core()}
    with tempfile.TemporaryDirectory() as workdir:
        index, figures["indexing"] = indexing_figures(args.corpus, args.chunk_size, Path(workdir))
        with index:
            questions, figures["unmapped"] = gold_keys(index, args.generations)
            figures["questions"] = len(questions)
            searches = {"plain BM25": plain_bm25(index.chunks()), "index": lambda q: index.search(q, 10)}
            closers = []
            if args.embedding_base_url:
                searches["hybrid"], close = hybrid_search(index, args.embedding_base_url, args.embedding_model or "")
                closers.append(close)
            figures["recall"] = {name: recall(search, questions) for name, search in searches.items()}
            figures["latency"] = {
                name: latency(search, questions, args.rounds) for name, search in searches.items() if name != "plain BM25"
            }
            for close in closers:
                close()
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n".join(report_lines(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
