"""Assemble one training folder from one or more Verustoolkit OUTPUT folders.

    python assemble_training_data.py OUTPUT [OUTPUT ...] --dest training_data \
        [--eval-fraction 0.05] [--seed 42] [--similarity 0.8] [--tokenizer PATH]

Combines the datasets of every OUTPUT folder, removes duplicate documents and
conversations and near-duplicate questions, holds out an evaluation split the
model never sees, shuffles with the seed and writes DEST with a dataset card
(DEST/README.md). The axolotl configuration in _model_training_configs_and_data/
trains on DEST. See the README (Training an LLM with your new data) and the
dataset_assembly package.

Exit codes: 0 done; 2 a missing folder, a folder without datasets, a bad
option, a --tokenizer that cannot be read or an unusable --dest (nothing is
written).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional

from dataset_assembly.assembly import AssembleOptions, unique_labels
from dataset_assembly.layout import CARD
from dataset_assembly.output_folders import TrainingDataError, load_output_folder
from dataset_assembly.token_counting import TokenizerLoadError
from dataset_assembly.writing import write_training_folder


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="assemble_training_data.py",
        description="Combine Verustoolkit OUTPUT folders into one deduplicated training folder with an eval split.",
    )
    parser.add_argument("outputs", nargs="+", type=Path, metavar="OUTPUT", help="an OUTPUT folder of a finished run")
    parser.add_argument("--dest", type=Path, default=Path("training_data"), help="folder to write (default: training_data)")
    parser.add_argument("--eval-fraction", type=float, default=0.05,
                        help="share of question/answer pairs held out for evaluation (default: 0.05; 0 for none)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the shuffle and the eval draw (default: 42)")
    parser.add_argument("--similarity", type=float, default=0.8,
                        help="word-set Jaccard similarity from which two questions count as duplicates (default: 0.8)")
    parser.add_argument("--tokenizer", type=Path, metavar="PATH",
                        help="the base model's tokenizer (tokenizer.json, or a Hugging Face model folder) for exact "
                             "token counts on the dataset card; read offline")
    parser.add_argument("--no-tiktoken", action="store_true",
                        help="without --tokenizer, estimate tokens as characters / 4 even if tiktoken is installed")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        resolved = [path.resolve() for path in args.outputs]
        if len(set(resolved)) != len(resolved):
            raise TrainingDataError("the same OUTPUT folder is given more than once")
        labels = unique_labels(args.outputs)
        folders = [load_output_folder(path, label) for path, label in zip(args.outputs, labels)]
        options = AssembleOptions(
            eval_fraction=args.eval_fraction,
            seed=args.seed,
            similarity=args.similarity,
            prefer_tiktoken=not args.no_tiktoken,
            tokenizer=args.tokenizer,
        )
        command = "python assemble_training_data.py " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        manifest = write_training_folder(folders, args.dest, options, command=command)
    except (TrainingDataError, TokenizerLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = manifest["files"]
    print(f"wrote {args.dest} (see {args.dest / CARD})")
    for name, entry in files.items():
        print(f"  {name}: {entry['rows']} rows, {entry['tokens']} tokens")
    for reason, count in manifest["removed"].items():
        print(f"  removed {count} {reason}")
    print(f"  tokens: {manifest['token_count_method']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
