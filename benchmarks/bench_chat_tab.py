"""The WebUI Chat tab's handler over the real corpus: time to the first streamed word, and search time per question.

The handler is the tab's own (ChatService.ask through chat_view.page_values, the HTML
the page receives included), the documents are ../shared/verus_corpus, and the model is
the fake server in a process of its own (python -m tests.fake_llm_server), which answers
at once: what is measured is the tab's own cost, from the question to the first page
that shows a word of the answer, and the search (the check that the index is current,
then the search itself) per question. The questions are real ones, from
../shared/real_generations, asked in conversations of --turns questions (the history
grows as in a real chat).

Usage: python benchmarks/bench_chat_tab.py [--corpus DIR] [--generations DIR] [--questions 60]
                                           [--turns 3] [--top-k 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from retrieval_devset import load_questions  # noqa: E402
from webui.chat_tab import ChatOptions, ChatService, source_signature  # noqa: E402
from webui.chat_view import page_values  # noqa: E402

SHARED = REPO_ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_fake_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm_server", "--port", str(port)],
        cwd=str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the fake server did not start")


def write_config(folder: Path, corpus: Path, base_url: str, top_k: int) -> Path:
    config = {
        "API": {"API_KEY": "", "BASE_URL": base_url, "LARGE_LOGICAL_MODEL": "large-model", "LOGICAL_MODEL": "small-model"},
        "PATH": {"INPUT": str(corpus), "OUTPUT": str(folder / "output"),
                 "DEFAULT_PROMPTS": str(REPO_ROOT / "prompts"), "PROMPTS": str(REPO_ROOT / "prompts")},
        "SYSTEM": {"CHUNK_SIZE": 1900},
        "RETRIEVAL": {"TOP_K": top_k},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


async def ask_timed(service: ChatService, question: str, options: ChatOptions, turns: list) -> dict:
    """One question through the tab's handler: seconds to the first page showing an answer word, and more."""
    started = time.perf_counter()
    first_word = None
    pages = 0
    async for page, _ in page_values(service.ask(question, options, turns)):
        pages += 1
        if first_word is None and turns and turns[-1].answer:
            first_word = time.perf_counter() - started
    turn = turns[-1]
    if turn.state != "done":
        raise RuntimeError(f"the question failed: {turn.note}")
    return {"first_word_s": first_word, "search_s": turn.search_seconds, "total_s": time.perf_counter() - started,
            "sources": len(turn.sources), "pages": pages, "html_kb": len(page) / 1024}


async def measure(service: ChatService, questions: list[str], turns_per_chat: int, rag: bool) -> list[dict]:
    results, turns = [], []
    for number, question in enumerate(questions):
        if number % turns_per_chat == 0:
            turns = []  # a new conversation (the Clear button)
        results.append(await ask_timed(service, question, ChatOptions(rag=rag), turns))
    return results


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def run(args: argparse.Namespace, base_url: str, workdir: Path) -> dict:
    config_path = write_config(workdir, args.corpus, base_url, args.top_k)
    questions = [q.question for q in load_questions(args.generations)][: args.questions + 1]
    service = ChatService(config_path)
    figures: dict = {"questions": len(questions) - 1, "turns_per_chat": args.turns, "top_k": args.top_k}
    first = await ask_timed(service, questions[0], ChatOptions(), [])
    figures["first_question_builds_index_s"] = first["first_word_s"]
    figures["index"] = service.keeper.status
    rag = await measure(service, questions[1:], args.turns, rag=True)
    no_rag = await measure(service, questions[1:], args.turns, rag=False)
    figures["rag"] = {
        "first_word": summary([r["first_word_s"] for r in rag]),
        "search": summary([r["search_s"] for r in rag]),
        "sources_mean": statistics.mean(r["sources"] for r in rag),
        "pages_per_answer_mean": statistics.mean(r["pages"] for r in rag),
        "last_page_kb_max": max(r["html_kb"] for r in rag),
    }
    figures["no_rag"] = {"first_word": summary([r["first_word_s"] for r in no_rag])}
    config = service.saved_config()
    checks = []
    for _ in range(20):
        started = time.perf_counter()
        source_signature(config)
        checks.append(time.perf_counter() - started)
    figures["index_check"] = summary(checks)
    await service.keeper.close()
    await service.clients.close()
    return figures


def report_lines(figures: dict) -> list[str]:
    def line(name: str, numbers: dict) -> str:
        return (f"  {name:<34} median {numbers['median_ms']:7.1f} ms   p95 {numbers['p95_ms']:7.1f} ms   "
                f"min {numbers['min_ms']:6.1f}   max {numbers['max_ms']:7.1f}")

    rag = figures["rag"]
    return [
        f"corpus: {figures['corpus']}",
        f"index: {figures['index']}",
        f"first question (builds the index, then answers): first word after {figures['first_question_builds_index_s']:.2f} s",
        f"{figures['questions']} real questions, conversations of {figures['turns_per_chat']}, top-k {figures['top_k']} "
        f"({rag['sources_mean']:.1f} sources per answer on average):",
        line("first streamed word, RAG on", rag["first_word"]),
        line("first streamed word, RAG off", figures["no_rag"]["first_word"]),
        line("search per question (check + search)", rag["search"]),
        line("of which the index check", figures["index_check"]),
        f"  page updates per answer: {rag['pages_per_answer_mean']:.1f}; largest page: {rag['last_page_kb_max']:.0f} KB",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "verus_corpus")
    parser.add_argument("--generations", type=Path, default=SHARED / "real_generations")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--turns", type=int, default=3, help="questions per conversation")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    for folder in (args.corpus, args.generations):
        if not folder.is_dir():
            print(f"skipped: {folder} is not there", file=sys.stderr)
            return 0
    os.environ.pop("OPENAI_API_KEY", None)
    process, base_url = start_fake_server()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            figures = asyncio.run(run(args, base_url, Path(workdir)))
    finally:
        process.terminate()
        process.wait(10)
    figures["corpus"] = str(args.corpus)
    print("\n".join(report_lines(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
