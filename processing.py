"""Verustoolkit: turn a folder of documents about Verus into LLM training data.

    python processing.py                  # uses ./config.yaml
    python processing.py --config FILE    # another config file

Exit codes: 0 done; 1 the run stopped midway (rerun to resume); 2 bad config,
prompts or input, no usable model server, or a server that refuses the run's
requests as configured (the message names the setting to fix); 3 the run
finished but wrote no conversation at all (datasets and report are written; the
message says which step lost everything and what to try); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional

from tqdm import tqdm

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"
STAGE_LABELS = {"chunks": "question generation", "pairs": "checking pairs", "conversations": "conversations"}

class TqdmProgress:
    """One progress bar per stage; totals grow as chunks reveal how many pairs they hold."""

    def __init__(self) -> None:
        self.bars = {
            # disable=None: no bars when stderr is not a terminal (logs, CI, pipes)
            stage: tqdm(total=0, desc=f"{label:>20}", unit=stage, position=i, leave=True, dynamic_ncols=True, disable=None)
            for i, (stage, label) in enumerate(STAGE_LABELS.items())
        }

    def grow(self, stage: str, amount: int) -> None:
        bar = self.bars[stage]
        bar.total += amount
        bar.refresh()

    def advance(self, stage: str, amount: int = 1) -> None:
        self.bars[stage].update(amount)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class _TqdmHandler(logging.Handler):
    """Log lines printed above the progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def console_handler() -> logging.Handler:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    return handler


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Turn a folder of documents into LLM training datasets.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: config.yaml)")
    parser.add_argument("--verbose", action="store_true", help="log every retry and check failure")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate config and prompts, ping each model, print what the run would do; generate nothing",
    )
    return parser.parse_args(argv)


def fail(failure) -> int:
    print(f"error: {failure.message}", file=sys.stderr)
    return failure.exit_code


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    from generation_functions.log_setup import project_logging

    with project_logging(console_handler(), logging.DEBUG if args.verbose else logging.INFO):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # Imported here so that `--help` and config errors stay fast.
    from control_flow_functions import load_prompts, run_pipeline
    from generation_functions.config import check_output_folder, config_warnings, load_config
    from generation_functions.errors import ConfigError, ConfigurationRejected, InputError, PromptError, ServerUnreachable
    from generation_functions.failures import describe_failure, describe_outcome
    from generation_functions.preflight import check_server, run_check
    from generation_functions.report import summary_text

    try:
        config = load_config(args.config)
        check_output_folder(config, str(args.config))
        for warning in config_warnings(config):
            logging.getLogger("verustoolkit").warning(warning)
        prompts = load_prompts(config)
        if args.check:
            result = asyncio.run(run_check(config, prompts))
            print("\n".join(result.lines))
            return 2 if result.problems else 0
        asyncio.run(check_server(config))
    except (ConfigError, PromptError, InputError, ServerUnreachable, ConfigurationRejected) as exc:
        return fail(describe_failure(exc, how_to_resume=None))

    progress = None if args.no_progress else TqdmProgress()
    rerun = f"rerun `python processing.py --config {args.config}`"
    try:
        report = asyncio.run(run_pipeline(config, progress, prompts))
    except (KeyboardInterrupt, Exception) as exc:
        failure = describe_failure(exc, f"{rerun} to resume")
        if not failure.expected:
            raise  # a bug: the traceback is what a report needs
        return fail(failure)
    print(summary_text(report))
    empty = describe_outcome(report, rerun)  # no conversation at all: exit 3, the datasets are written
    return fail(empty) if empty is not None else 0


if __name__ == "__main__":
    sys.exit(main())
