"""Throughput and peak memory of reading + chunking a document folder.

Measures, each in a fresh subprocess (so ru_maxrss is that measurement's own peak):
  1. the real corpus ../shared/verus_corpus (when present);
  2. a generated ~100 MB markdown-like corpus (many files, plus a few big ones);
  3. split_text alone on in-memory plain text (the chunker's own speed).
The read+chunk path streams: documents and chunks are counted, never collected.

Usage: python benchmarks/bench_reading_chunking.py [--size-mb 100] [--chunk-size 3000]
Targets: >= 20 MB/s on plain text, < 1 GB peak for 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT.parent / "shared" / "verus_corpus"
WORDS = (
    "verus staking mining identity currency block reward notary bridge ethereum chain consensus "
    "proof power merge mined transaction wallet address private key daemon node peer sync fork "
    "the a of to and is in for on with by from that this it as be are was can will not"
).split()
ACCENTED = "réseau naïve café’s “quoted” déjà–vu".split()


# --------------------------------------------------------------------------- corpus generation


def _sentence(rng: random.Random, accented: bool) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 24))]
    if accented and rng.random() < 0.3:
        words[rng.randrange(len(words))] = rng.choice(ACCENTED)
    return " ".join(words).capitalize() + rng.choice(".....?!")


def _paragraph(rng: random.Random, accented: bool) -> str:
    kind = rng.random()
    if kind < 0.08:
        commands = "\n".join(f"verus -chain=VRSC {rng.choice(WORDS)} {n}" for n in range(rng.randint(2, 12)))
        return f"```bash\n{commands}\n# ref\n```"
    if kind < 0.13:
        rows = [f"| {rng.choice(WORDS)} | {rng.randint(0, 999)} | {rng.choice(WORDS)} |" for _ in range(rng.randint(2, 10))]
        return "| name | value | note |\n|---|---|---|\n" + "\n".join(rows)
    if kind < 0.23:
        return "\n".join(f"- {_sentence(rng, accented)}" for _ in range(rng.randint(2, 8)))
    if kind < 0.30:
        return f"## {_sentence(rng, accented).rstrip('.?!')}"
    text = " ".join(_sentence(rng, accented) for _ in range(rng.randint(1, 10)))
    if rng.random() < 0.2:
        text = text.replace(". ", ".  ")  # double spaces after periods, as typed
    return text


def generate_corpus(folder: Path, size_mb: int, seed: int = 7) -> int:
    """Write ~size_mb MB of markdown-like files; return the bytes written."""
    rng = random.Random(seed)
    pool_plain = [_paragraph(rng, accented=False) for _ in range(4000)]
    pool_accented = [_paragraph(rng, accented=True) for _ in range(4000)]
    target = size_mb * 1_000_000
    big_files = {3: 10_000_000, 11: 5_000_000}  # a few large files among many small ones
    written, number = 0, 0
    while written < target:
        pool = pool_accented if number % 2 else pool_plain
        size = big_files.get(number, rng.randint(20_000, 400_000))
        parts = [f"# Document {number}"]
        length = 0
        while length < size:
            # A unique reference keeps chunks distinct (chunk_documents drops repeats).
            paragraph = rng.choice(pool).replace("# ref", f"# ref {number}-{len(parts)}", 1)
            if not paragraph.endswith("```"):
                paragraph += f" (ref {number}-{len(parts)})"
            parts.append(paragraph)
            length += len(paragraph) + 2
        data = "\n\n".join(parts).encode("utf-8")
        subfolder = folder / f"part{number % 10}"
        subfolder.mkdir(parents=True, exist_ok=True)
        (subfolder / f"doc{number:05d}.{'md' if number % 3 else 'txt'}").write_bytes(data)
        written += len(data)
        number += 1
    return written


# --------------------------------------------------------------------------- measurements (child side)


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure_read_and_chunk(folder: Path, chunk_size: int) -> dict[str, float]:
    """Stream the folder through iter_documents -> chunk_documents; nothing is collected."""
    from generation_functions.chunking import chunk_documents
    from generation_functions.documents import Document, iter_documents

    counts = {"documents": 0, "skipped": 0, "chunks": 0, "max_chunk": 0}

    def documents():
        for item in iter_documents(folder):
            if isinstance(item, Document):
                counts["documents"] += 1
                yield item
            else:
                counts["skipped"] += 1

    started, cpu_started = time.perf_counter(), time.process_time()
    for chunk in chunk_documents(documents(), chunk_size):
        counts["chunks"] += 1
        counts["max_chunk"] = max(counts["max_chunk"], len(chunk.text))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"bytes": _folder_bytes(folder), "seconds": elapsed, "cpu_seconds": cpu, **counts}


def measure_split_only(folder: Path, chunk_size: int) -> dict[str, float]:
    """split_text alone on the files' text (already in memory, one file at a time)."""
    from generation_functions.chunking import split_text

    total_bytes, elapsed, cpu, chunks = 0, 0.0, 0.0, 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        total_bytes += path.stat().st_size
        started, cpu_started = time.perf_counter(), time.process_time()
        chunks += len(split_text(text, chunk_size))
        elapsed += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
    return {"bytes": total_bytes, "seconds": elapsed, "cpu_seconds": cpu, "chunks": chunks}


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    /proc's VmHWM starts afresh at exec; ru_maxrss (the fallback) can carry the
    parent's peak over a fork+exec, which would inflate a child's figure.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, folder: Path, chunk_size: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import logging

    import generation_functions.chunking  # noqa: F401  (imports count in the baseline)
    import generation_functions.documents  # noqa: F401

    logging.basicConfig(level=logging.ERROR)
    baseline = peak_rss_mb()
    measure = measure_read_and_chunk if mode == "read+chunk" else measure_split_only
    result = measure(folder, chunk_size)
    result["peak_rss_mb"] = peak_rss_mb()
    result["baseline_rss_mb"] = baseline
    print(json.dumps(result))


# --------------------------------------------------------------------------- driver (parent side)


def run_in_subprocess(mode: str, folder: Path, chunk_size: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--chunk-size", str(chunk_size)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(label: str, mode: str, result: dict[str, float]) -> None:
    megabytes = result["bytes"] / 1e6
    rate = megabytes / result["seconds"] if result["seconds"] else float("inf")
    cpu_rate = megabytes / result["cpu_seconds"] if result["cpu_seconds"] else float("inf")
    extra = ", ".join(f"{key}={int(result[key])}" for key in ("documents", "skipped", "chunks", "max_chunk") if key in result)
    print(
        f"{label:<20} {mode:<11} {megabytes:6.1f} MB  wall {result['seconds']:6.2f} s = {rate:5.1f} MB/s  "
        f"cpu {result['cpu_seconds']:6.2f} s = {cpu_rate:5.1f} MB/s  "
        f"peak RSS {result['peak_rss_mb']:6.1f} MB (after imports {result['baseline_rss_mb']:.0f} MB)  {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=3000)
    parser.add_argument("--child", choices=["read+chunk", "split-only"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.folder, args.chunk_size)
        return

    print(f"chunk size {args.chunk_size} characters; each line is a fresh subprocess; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if CORPUS.is_dir():
        report("verus_corpus", "read+chunk", run_in_subprocess("read+chunk", CORPUS, args.chunk_size))
    else:
        print(f"{CORPUS} not present: skipped")
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as temporary:
        folder = Path(temporary)
        started = time.perf_counter()
        written = generate_corpus(folder, args.size_mb)
        print(f"generated {written / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")
        label = f"generated {args.size_mb} MB"
        report(label, "read+chunk", run_in_subprocess("read+chunk", folder, args.chunk_size))
        report(label, "split-only", run_in_subprocess("split-only", folder, args.chunk_size))


if __name__ == "__main__":
    main()
