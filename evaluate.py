"""What does a model know about the documents? Ask it the held-out questions, have a judge grade
the answers, and compare models and conditions.

    python evaluate.py --eval-set training_data --candidate base=llama3-8b@http://127.0.0.1:8081/v1 \\
                       --candidate tuned=verus-8b@http://127.0.0.1:8082/v1

The judge is API.LARGE_LOGICAL_MODEL at API.BASE_URL (or EVALUATION.JUDGE_MODEL). Results go to
EVALUATION.OUTPUT: eval_report.md (read this), eval_report.json and eval_answers.jsonl. A rerun
reuses every stored answer and verdict.

Exit codes: 0 done; 1 stopped midway (rerun to resume); 2 bad config, flags, evaluation set or no
usable server (nothing was asked); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional

from processing import DEFAULT_CONFIG, console_handler, fail

CONDITION_NAMES = ("closed_book", "rag", "oracle")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate what models know about the documents.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: config.yaml)")
    parser.add_argument("--eval-set", type=Path, required=True,
                        help="a training folder (eval/), an OUTPUT folder, or a jsonl of question/answer(/chunk) rows")
    parser.add_argument("--candidate", action="append", default=[], metavar="NAME=MODEL@BASE_URL[#KEY_ENV]",
                        help="a model to evaluate (repeatable); replaces EVALUATION.CANDIDATES")
    parser.add_argument("--conditions", help="comma-separated: closed_book, rag, oracle (default: EVALUATION.CONDITIONS)")
    parser.add_argument("--output", type=Path, help="where the results go (default: EVALUATION.OUTPUT)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--check", action="store_true", help="check config, evaluation set and servers; ask nothing")
    parser.add_argument("--verbose", action="store_true", help="log every retry")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from generation_functions.log_setup import project_logging

    with project_logging(console_handler(), logging.DEBUG if args.verbose else logging.INFO):
        return _run(args)


def _conditions(args: argparse.Namespace, config) -> list[str]:
    from generation_functions.errors import ConfigError

    if not args.conditions:
        return list(dict.fromkeys(config.evaluation.CONDITIONS))
    chosen = [name.strip() for name in args.conditions.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CONDITION_NAMES]
    if unknown or not chosen:
        raise ConfigError(f"--conditions: {', '.join(unknown) or '(none)'} unknown; choose from {', '.join(CONDITION_NAMES)}")
    return list(dict.fromkeys(chosen))


def _run(args: argparse.Namespace) -> int:
    from evaluation import candidates as candidate_models
    from evaluation.eval_set import load_eval_set
    from evaluation.report import REPORT_MARKDOWN
    from evaluation.run import load_judge_prompt, run_evaluation
    from generation_functions.config import load_config
    from generation_functions.errors import ConfigError, InputError, PromptError, ServerUnreachable
    from generation_functions.failures import describe_failure
    from generation_functions.preflight import check_server

    try:
        config = load_config(args.config)
        if args.output is not None:
            config = config.model_copy(update={"evaluation_dir": args.output.resolve()})
        if args.limit is not None and args.limit < 1:
            raise ConfigError("--limit must be at least 1")
        conditions = _conditions(args, config)
        candidates = candidate_models.choose(config, args.candidate)
        items = load_eval_set(args.eval_set, args.limit)
        load_judge_prompt(config)
        retrieve = _retriever(config) if "rag" in conditions else None
        asyncio.run(check_server(config, probe=False))  # the run's models need not be the candidates
        asyncio.run(candidate_models.check_candidates(candidates))
    except (ConfigError, PromptError, InputError, ServerUnreachable) as exc:
        return fail(describe_failure(exc, how_to_resume=None))
    if args.check:
        answers = len(items) * len(candidates) * len(conditions)
        print(f"Evaluation set: {len(items)} questions; candidates: {', '.join(c.name for c in candidates)}; "
              f"conditions: {', '.join(conditions)}")
        print(f"Requests: {answers} answers + {answers}-{answers * config.evaluation.VOTES} judgments. Check passed: nothing was asked.")
        return 0
    progress = None if args.no_progress else _bar()
    try:
        report = asyncio.run(run_evaluation(config, items, candidates, conditions, args.eval_set, retrieve, progress))
    except (KeyboardInterrupt, Exception) as exc:
        failure = describe_failure(exc, f"rerun `python evaluate.py ...` with the same flags to resume")
        if not failure.expected:
            raise
        return fail(failure)
    print((config.evaluation_dir / REPORT_MARKDOWN).read_text(encoding="utf-8"))
    print(f"written to {config.evaluation_dir}")
    return 0


def _retriever(config):
    from evaluation.retrieval_adapter import make_retriever

    return make_retriever(config)


def _bar():
    from tqdm import tqdm

    class Bar:
        def __init__(self) -> None:
            self.bar = tqdm(total=0, desc="answers judged", unit="answer", disable=None)

        def grow(self, stage: str, amount: int) -> None:
            self.bar.total += amount
            self.bar.refresh()

        def advance(self, stage: str, amount: int = 1) -> None:
            self.bar.update(amount)

        def close(self) -> None:
            self.bar.close()

    return Bar()


if __name__ == "__main__":
    sys.exit(main())
