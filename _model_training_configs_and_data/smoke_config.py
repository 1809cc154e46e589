"""The CPU smoke-run config: the real training config with only what the small
model and a CPU force changed.

smoke_train.py trains a few steps of a 135M-parameter model on a CPU with this
config, so that dataset and config mistakes surface before a GPU is rented.
That only proves something about the real run if everything that touches the
data stays as it is: the dataset sections (paths, types, field mappings,
roles, roles_to_train, train_on_eos), the optimizer and its target modules,
the learning rate and schedule. CPU_CHANGES below is the complete list of what
differs, each with its reason; derive_cpu_config applies exactly that list and
nothing else (a test holds it to that).

Pure: reads no file and imports neither axolotl nor torch, so the project's
own tests check it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REAL_CONFIG = Path(__file__).resolve().parent / "verus_llama3_8b_galore.yaml"

# The config's own folder names, kept so the dataset sections stay byte-identical:
# the smoke run starts axolotl in a work folder where training_data/ holds the data.
DATA_FOLDER = "training_data"

DEFAULT_MAX_STEPS = 4
SMOKE_SEQUENCE_LEN = 1024
SMOKE_GALORE_RANK = 32

REMOVE = object()  # a change that deletes the key


@dataclass(frozen=True)
class Change:
    key: str  # top-level key, or "parent.child" for one entry of a mapping
    value: Any  # the new value, or REMOVE
    reason: str


def cpu_changes(base_model: str, pad_token: str, max_steps: int = DEFAULT_MAX_STEPS) -> list[Change]:
    """Every key the smoke config changes, and why. base_model is the small model's
    folder, pad_token a token of its vocabulary."""
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    return [
        # What the small model forces: its folder, its vocabulary, its chat format.
        Change("base_model", base_model, "a 135M-parameter model instead of the 8B one, so a CPU can train it"),
        Change("chat_template", "tokenizer_default",
               "Llama 3's template uses special tokens only the 8B model's vocabulary has; the small model's own "
               "template takes its place (the rows are checked against the Llama 3 template before the run)"),
        Change("special_tokens", {"pad_token": pad_token}, "Llama 3's <|end_of_text|> is not in the small model's vocabulary"),
        Change("fix_untrained_tokens", REMOVE, "the token ids 128006, 128007, 128009 are Llama 3's chat tokens"),
        Change("optim_args.rank", SMOKE_GALORE_RANK,
               "GaLore's rank must stay well below the small model's 576-wide matrices (256 would project little away)"),
        # What a CPU forces: no flash attention (so no packing), no bf16/tf32, little time.
        Change("attn_implementation", "eager", "flash attention 2 needs an NVIDIA GPU"),
        Change("sample_packing", False, "packing several rows into one needs flash attention"),
        Change("pad_to_sequence_len", False, "padding every row to full length would only cost CPU time"),
        Change("sequence_len", SMOKE_SEQUENCE_LEN,
               "a CPU step over 4096 tokens takes minutes; rows longer than this are dropped here, not on the GPU"),
        Change("bf16", False, "bf16 mixed precision is a GPU feature here"),
        Change("tf32", False, "TF32 is an NVIDIA GPU feature"),
        Change("gradient_accumulation_steps", 1, "one row per optimizer step keeps a few steps within a minute or two"),
        Change("max_steps", max_steps, "a few steps, not num_epochs epochs"),
        Change("evals_per_epoch", REMOVE, "replaced by eval_steps: epochs are never finished here"),
        Change("eval_steps", max_steps, "the eval loss before the first step and after the last"),
        Change("saves_per_epoch", REMOVE, "replaced by save_steps: epochs are never finished here"),
        Change("save_steps", max_steps, "one checkpoint, after the last step"),
    ]


def derive_cpu_config(real: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """The real config with `changes` applied; the real config is not modified."""
    config = copy.deepcopy(real)
    for change in changes:
        parent, _, child = change.key.partition(".")
        target, key = (config.setdefault(parent, {}), child) if child else (config, parent)
        if change.value is REMOVE:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(change.value)
    return config


def dataset_paths(config: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(section, index, entry) for every dataset the config names, training first."""
    return [(section, index, entry)
            for section in ("datasets", "test_datasets")
            for index, entry in enumerate(config.get(section) or [])]


def describe_changes(changes: list[Change]) -> list[str]:
    return [f"{c.key}: {'removed' if c.value is REMOVE else c.value!r} ({c.reason})" for c in changes]
