"""Chat with a model about your documents, in the terminal.

    python chat.py                                    # config.yaml: API.BASE_URL, LARGE_LOGICAL_MODEL
    python chat.py --base-url http://127.0.0.1:8080/v1 --model verus-8b
    python chat.py --no-rag                           # the model alone, no retrieved chunks
    echo "What is VerusID?" | python chat.py          # one question from a pipe

Each question is searched in the index of PATH.INPUT's chunks (built on first
use, then kept up to date), the chunks found go into FINAL_ASSISTANT_PROMPT_RAG
as in the training data, and the answer streams out, followed by the sources:
which file and chunk the model was given. Type /reset to forget the conversation,
/quit (or Ctrl-D) to leave.

Exit codes: 0 done; 2 bad config, an empty index, or no usable model server; 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional, TextIO

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"
QUIT_COMMANDS = frozenset({"/quit", "/exit", "quit", "exit"})


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chat with a model about your documents (retrieval-augmented).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: config.yaml)")
    parser.add_argument("--base-url", help="the OpenAI-compatible server (default: the first API.BASE_URL)")
    parser.add_argument("--model", help="the model to chat with (default: API.LARGE_LOGICAL_MODEL)")
    parser.add_argument("--no-rag", action="store_true", help="no retrieval: the FINAL_ASSISTANT_PROMPT_NO_RAG prompt alone")
    parser.add_argument("--top-k", type=_positive, help="chunks given per question (default: RETRIEVAL.TOP_K)")
    parser.add_argument(
        "--source", choices=("input", "output"), help="index PATH.INPUT's documents or a finished OUTPUT's chunks (default: RETRIEVAL.SOURCE)"
    )
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7)")
    parser.add_argument("--max-tokens", type=_positive, default=1024, help="longest answer in tokens (default 1024)")
    parser.add_argument("--verbose", action="store_true", help="log requests and retries")
    return parser.parse_args(argv)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: Optional[list[str]] = None, stdin: Optional[TextIO] = None, stdout: Optional[TextIO] = None) -> int:
    args = parse_args(argv)
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    from generation_functions.log_setup import project_logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    with project_logging(handler, logging.DEBUG if args.verbose else logging.WARNING):
        try:
            return asyncio.run(_chat(args, stdin, stdout))
        except KeyboardInterrupt:
            print("\ninterrupted.", file=sys.stderr)
            return 130


def fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


async def _chat(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    # Imported here so that `--help` stays fast.
    from generation_functions.config import load_config
    from generation_functions.errors import ConfigError, EngineError, InputError
    from retrieval.chat_client import ChatClient, ChatSettings
    from retrieval.chat_session import ChatSession
    from retrieval.search import open_retriever

    try:
        config = load_config(args.config, check_input=False)
    except ConfigError as exc:
        return fail(str(exc))
    if config.system.MODE == "cohere" and not args.base_url:
        return fail(
            "chat.py speaks the OpenAI-compatible chat API; with SYSTEM.MODE cohere, pass --base-url "
            "(Cohere's compatible API is https://api.cohere.com/compatibility/v1)"
        )
    retriever = None
    if not args.no_rag:
        try:
            retriever, stats = await open_retriever(config, args.source)
        except InputError as exc:
            return fail(f"{exc}. Add documents, or chat without retrieval: --no-rag")
        except EngineError as exc:  # the embedding server
            return fail(str(exc))
        mode = "lexical + embeddings" if retriever.dense else "lexical"
        print(f"index: {stats.summary()}; search: {mode}, top {args.top_k or retriever.top_k}", file=sys.stderr)
    settings = ChatSettings.from_config(
        config, args.base_url, args.model, temperature=args.temperature, max_tokens=args.max_tokens
    )
    client = ChatClient(settings)
    try:
        try:
            await client.check()
        except EngineError as exc:
            return fail(str(exc))
        print(f"model: {settings.model} at {client.base_url}" + (" (no retrieval)" if retriever is None else ""), file=sys.stderr)
        session = ChatSession(client, config.system, retriever, args.top_k)
        await _conversation(session, stdin, stdout)
        return 0
    finally:
        await client.close()
        if retriever is not None:
            await retriever.close()


async def _conversation(session, stdin: TextIO, stdout: TextIO) -> None:
    interactive = stdin.isatty()
    while True:
        if interactive:
            print("\nyou> ", end="", file=stdout, flush=True)
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            return  # end of input
        question = line.strip()
        if not question:
            continue
        if question.lower() in QUIT_COMMANDS:
            return
        if question.lower() == "/reset":
            session.reset()
            print("(conversation forgotten)", file=stdout, flush=True)
            continue
        await _answer(session, question, stdout)


async def _answer(session, question: str, stdout: TextIO) -> None:
    from generation_functions.errors import EngineError
    from retrieval.chat_session import Answered, Piece, Sources

    sources = ()
    try:
        async for event in session.ask(question):
            if isinstance(event, Sources):
                sources = event.hits
            elif isinstance(event, Piece):
                print(event.text, end="", file=stdout, flush=True)
            elif isinstance(event, Answered):
                print(file=stdout)
    except EngineError as exc:
        print(file=stdout, flush=True)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return
    print(sources_text(sources, session.retriever is not None), file=stdout, flush=True)


def sources_text(hits, rag: bool) -> str:
    if not rag:
        return "sources: none (retrieval is off)"
    if not hits:
        return "sources: none found for this question (answered without documents)"
    return "sources:\n" + "\n".join(f"  [{number}] {hit.label}" for number, hit in enumerate(hits, start=1))


if __name__ == "__main__":
    sys.exit(main())
