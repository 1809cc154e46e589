"""The data-quality figures of a run, on the real Verus corpus.

Two parts:

1. The pipeline over the first N chunks of a ../shared/verus_corpus folder against the
   project's fake model server (real HTTP, in-process). The fake writes one kind of
   question and never judges a chunk unsuitable unless told, so these figures check the
   machinery (the chunk filter, the quality tally, the dataset rows) on real documents,
   not a model's judgement.
2. The real question-generation outputs of a Llama-3-70B run of the seed prompts
   (../shared/real_generations/question_generation.jsonl), read by the current parser:
   pairs per chunk, question and answer lengths, labelled kinds (the seed prompt asked
   for none) and near-duplicate questions. That is the baseline the varied-question
   prompt is measured against once a real model runs it.

    python benchmarks/bench_quality.py --folder raw_text_input_docs --chunks 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_flow_functions import run_pipeline  # noqa: E402
from generation_functions.config import config_from_dict  # noqa: E402
from generation_functions.errors import ParseError  # noqa: E402
from generation_functions.output_processors import parse_question_generation, parse_question_kinds  # noqa: E402
from generation_functions.quality import QualityTally, quality_lines  # noqa: E402
from tests.fake_llm_server import FakeLLMServer  # noqa: E402

CORPUS = REPO.parent / "shared" / "verus_corpus"
REAL = REPO.parent / "shared" / "real_generations" / "question_generation.jsonl"


def run_fake(folder: Path, chunks: int) -> dict:
    with FakeLLMServer() as server, tempfile.TemporaryDirectory(dir=REPO / "benchmarks") as scratch:
        config = config_from_dict(
            {
                "API": {"BASE_URL": server.base_url, "LOGICAL_MODEL": "small", "LARGE_LOGICAL_MODEL": "large"},
                "PATH": {"INPUT": str(folder), "OUTPUT": str(Path(scratch) / "output")},
                "SYSTEM": {"USE_SUBSET": True, "SUBSET_SIZE": chunks, "CONCURRENCY_LIMIT": 16},
            },
            base_dir=REPO,
            environ={},
        )
        return asyncio.run(run_pipeline(config))


def real_outputs() -> dict:
    """The quality tally of the recorded real outputs, as if each were one chunk's kept pairs."""
    tally = QualityTally()
    unparsable = 0
    for line in REAL.read_text(encoding="utf-8").splitlines():
        response = json.loads(line)["response"]
        try:
            pairs = parse_question_generation(response)
            kinds = parse_question_kinds(response)
        except ParseError:
            unparsable += 1
            continue
        vetted = [{"kind": kind} if kind else {} for kind in kinds]
        tally.add({"pairs": [list(pair) for pair in pairs], "vetted": vetted, "pair_kinds": kinds, "raw_pairs": pairs})
    return {**tally.as_dict(), "unparsable_outputs": unparsable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="raw_text_input_docs", help="a folder of ../shared/verus_corpus")
    parser.add_argument("--chunks", type=int, default=40, help="chunks to run (USE_SUBSET)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"{CORPUS} is absent: this benchmark needs the shared Verus corpus")
    report = run_fake(CORPUS / args.folder, args.chunks)
    print(f"== pipeline, fake model, {args.folder}, {args.chunks} chunks")
    print("\n".join(quality_lines(report["quality"])))
    print("  chunk filter:", json.dumps(report["stages"]["chunk_filter"]))
    print("  dataset rows:", json.dumps(report["outputs"]))
    if REAL.is_file():
        real = real_outputs()
        print("== real Llama-3-70B question generation outputs (seed prompt), parsed now")
        print("\n".join(quality_lines(real)))
        print(f"  unparsable outputs: {real['unparsable_outputs']}")
        print("  pairs per output:", json.dumps(real["pairs_per_chunk"]))


if __name__ == "__main__":
    main()
