"""assemble_training_data.py, the dataset_assembly package behind it (assembly, holdout,
writing, card, output_folders, chat_template), generation_functions.near_duplicates and the
axolotl config.

Real OUTPUT folders come from the pipeline run in-process against the fake
server; the dedup and split rules are also checked on hand-made rows. Needs
`datasets` (loading check) and `jinja2`; the axolotl check runs only where
axolotl imports (or AXOLOTL_PYTHON names an interpreter that has it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dataset_assembly.assembly import AssembleOptions, assemble, unique_labels
from dataset_assembly.chat_template import (
    ChatTemplateError,
    check_conversation_shape,
    render_llama3,
    sharegpt_to_messages,
)
from dataset_assembly.output_folders import TrainingDataError, load_output_folder
from dataset_assembly.writing import write_training_folder
from generation_functions.datasets import MASTER_LIST, PLAIN_QA, PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG
from generation_functions.near_duplicates import ContainmentIndex, NearDuplicateIndex, jaccard, normalise, word_set
from tests.conftest import REPO

CONFIG_DIR = REPO / "_model_training_configs_and_data"
AXOLOTL_CONFIG = CONFIG_DIR / "verus_llama3_8b_galore.yaml"
SCRIPT = REPO / "assemble_training_data.py"
TRAIN_FILES = (PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG, PLAIN_QA)

DOCS_A = {
    "verusid.md": (
        "# VerusID\n\nVerusID gives every person a self-sovereign identity recorded on the Verus blockchain. "
        "An identity can hold funds and sign messages on behalf of its owner.\n\n"
        "## Recovery\n\nA revoked identity can be restored by the recovery authority named when it was created. "
        "Revocation freezes every output controlled by that identity until recovery happens.\n"
    ),
    "staking.md": (
        "# Staking\n\nVerus secures its chain with Proof of Power, a blend of mining and staking rewards. "
        "Coins must mature for one hundred fifty blocks before they become eligible to stake.\n"
    ),
}
DOCS_B = {
    "staking.md": DOCS_A["staking.md"],  # the same page in both runs: duplicates to remove
    "pbaas.md": (
        "# PBaaS\n\nPublic Blockchains as a Service lets anyone launch an independent chain connected to Verus. "
        "Launched chains can export currencies and identities back to the Verus network.\n\n"
        "## Currencies\n\nBasket currencies hold reserves in several currencies and convert between them automatically. "
        "Conversions inside a block settle at one shared price for every participant.\n"
    ),
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_pipeline_on(tmp: Path, documents: dict[str, str]) -> Path:
    from control_flow_functions import run_pipeline
    from generation_functions.config import config_from_dict
    from tests.fake_llm_server import FakeLLMServer

    (tmp / "in").mkdir(parents=True)
    for name, text in documents.items():
        (tmp / "in" / name).write_text(text, encoding="utf-8")
    with FakeLLMServer() as server:
        config = config_from_dict(
            {
                "API": {"BASE_URL": server.base_url, "LOGICAL_MODEL": "small", "LARGE_LOGICAL_MODEL": "large"},
                "PATH": {"INPUT": "in", "OUTPUT": "out", "DEFAULT_PROMPTS": str(REPO / "prompts"),
                         "PROMPTS": str(REPO / "prompts")},
            },
            base_dir=tmp,
        )
        asyncio.run(run_pipeline(config))
    return tmp / "out"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=str(cwd)
    )


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return run_pipeline_on(base / "wiki", DOCS_A), run_pipeline_on(base / "docs", DOCS_B)


@pytest.fixture(scope="module")
def assembled(outputs, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("assembled") / "training_data"
    result = run_cli(str(outputs[0]), str(outputs[1]), "--dest", str(dest), "--eval-fraction", "0.2", "--seed", "7",
                     cwd=dest.parent)
    assert result.returncode == 0, result.stderr
    return dest


# ------------------------------------------------------------------ the template


def test_llama3_template_renders_the_documented_layout():
    text = render_llama3([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": " What is VRSC? "},
        {"role": "assistant", "content": "The Verus coin."},
    ])
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is VRSC?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nThe Verus coin.<|eot_id|>"
    )
    prompt = render_llama3([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert prompt.endswith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.parametrize(
    "roles",
    [("user", "user"), ("assistant",), ("system", "assistant"), ("user", "system"), ("system", "user", "user")],
)
def test_llama3_template_rejects_turns_out_of_order(roles):
    with pytest.raises(ChatTemplateError):
        render_llama3([{"role": r, "content": "x"} for r in roles])


def test_conversation_shape_rules():
    good = [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    assert check_conversation_shape(good) is None
    assert check_conversation_shape(good[:2]) is not None
    assert check_conversation_shape(good + [{"from": "human", "value": "q2"}]) is not None
    assert check_conversation_shape([good[1], good[0], good[2]]) is not None
    assert check_conversation_shape(good[:2] + [{"from": "gpt", "value": "  "}]) is not None
    with pytest.raises(ChatTemplateError):
        sharegpt_to_messages([{"from": "bot", "value": "x"}])


# ------------------------------------------------------------------ similarity


def test_normalise_lowercases_strips_punctuation_and_collapses_space():
    assert normalise("  What's  VerusID?!\n(Really)  ") == "whats verusid really"
    assert normalise("Ｖｅｒｕｓ—ID") == "verus id"
    assert word_set("What is VerusID?") == word_set("what IS verusid")


def test_near_duplicate_index_matches_brute_force():
    rng = random.Random(3)
    vocabulary = [f"w{i}" for i in range(40)]
    sets = [frozenset(rng.sample(vocabulary, rng.randint(1, 9))) for _ in range(400)]
    # Near copies so that matches exist: drop or swap one word.
    sets += [frozenset(list(s)[1:] + ["w99"]) for s in sets[:150] if len(s) > 4]
    for threshold in (0.3, 0.5, 0.6, 0.8, 0.9, 1.0):
        index = NearDuplicateIndex(threshold)
        for key, words in enumerate(sets):
            expected = [k for k in range(key) if jaccard(words, sets[k]) >= threshold]
            assert index.similar(words) == expected, (threshold, key)
            index.add(words, key)


def test_containment_index_finds_questions_inside_longer_turns():
    from collections import Counter

    index = ContainmentIndex(0.8, Counter())
    index.add(word_set("How long must coins mature before staking?"), "q1")
    index.add(word_set("What is a basket currency?"), "q2")
    turn = word_set("Thanks! Also, how long must coins mature before staking on Verus?")
    assert index.candidates(turn) == ["q1"]
    assert index.candidates(word_set("Tell me about mining")) == []


def test_dedup_of_100k_questions_is_not_quadratic():
    """Question-like sets: four of a few very common words plus five rarer ones.
    Comparing all with all would be 5e9 comparisons; the index checks a few per question."""
    from collections import Counter

    rng = random.Random(0)
    words = [f"term{i}" for i in range(5000)]
    common = ["what", "is", "the", "how", "does", "verus", "a", "of", "in", "do", "i"]
    questions = [" ".join(rng.sample(common, 4) + rng.sample(words, 5)) + "?" for _ in range(100_000)]
    questions[50_000] = questions[10].upper().replace("?", "!")  # one planted duplicate
    sets = [word_set(q) for q in questions]
    frequencies = Counter(itertools.chain.from_iterable(sets))  # as assemble() does
    index = NearDuplicateIndex(0.8, frequencies)
    duplicates = []
    for number, found in enumerate(sets):
        match = index.first_similar(found)
        if match is None:
            index.add(found, number)
        else:
            duplicates.append((number, match))
    assert (50_000, 10) in duplicates and len(duplicates) < 100
    assert index.candidates_checked < 10 * len(questions), index.candidates_checked


# ------------------------------------------------------------------ assembling hand-made folders


def write_folder(path: Path, pairs: list[tuple[str, str]], conversations: list[list[tuple[str, str]]],
                 documents: list[str] = ("Verus is a blockchain.",)) -> Path:
    """An OUTPUT folder as write_datasets lays it out; each conversation is built
    from consecutive pairs (the pairs it lists by index)."""
    path.mkdir(parents=True)
    with (path / PLAIN_QA).open("w", encoding="utf-8") as qa:
        for question, answer in pairs:
            qa.write(json.dumps({"question": question, "answer": answer, "source_filename": "doc.md",
                                 "chunk_index": 0, "chunk": "chunk"}) + "\n")
    with (path / SHAREGPT_NO_RAG).open("w", encoding="utf-8") as plain, \
            (path / SHAREGPT_RAG).open("w", encoding="utf-8") as rag, \
            (path / MASTER_LIST).open("w", encoding="utf-8") as master:
        for number, conversation in enumerate(conversations):
            turns = []
            for question, answer in conversation:
                turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
            chunk = f"Chunk number {number} about Verus."
            plain.write(json.dumps({"conversations": [{"from": "system", "value": "SYSTEM"}, *turns]}) + "\n")
            rag.write(json.dumps({"conversations": [{"from": "system", "value": f"RAG:\n{chunk}"}, *turns]}) + "\n")
            master.write(json.dumps({
                "conversation": [{"speaker": "User" if t["from"] == "human" else "AI Assistant", "message": t["value"]}
                                 for t in turns],
                "qa_pairs": [{"question": q, "answer": a} for q, a in conversation],
                "rag_context": chunk, "source_filename": "doc.md"}) + "\n")
    with (path / PRETRAINING_JSONL).open("w", encoding="utf-8") as pre:
        for text in documents:
            pre.write(json.dumps({"text": text}) + "\n")
    return path


def topic_pairs(prefix: str, count: int) -> list[tuple[str, str]]:
    return [(f"What does {prefix} topic number {i} say about subject{prefix}{i}?", f"Answer {prefix}{i}.")
            for i in range(count)]


def test_duplicates_and_near_duplicates_are_removed(tmp_path):
    pairs_a = topic_pairs("a", 6)
    pairs_b = [
        ("what does a topic number 0 say about subjecta0", "Same question, other casing."),  # near-dup of a0
        ("What does A topic number 1 say about subjecta1 exactly?", "One extra word."),  # 9 of 10 words: 0.9
        ("Which consensus does Verus use?", "Proof of Power."),
    ]
    conversations_a = [pairs_a[0:2], pairs_a[2:4], pairs_a[4:6]]
    conversations_b = [pairs_a[0:2], pairs_b[2:3]]  # an identical conversation, and a new one
    folder_a = load_output_folder(write_folder(tmp_path / "a", pairs_a, conversations_a, ["Doc one.", "Doc two."]))
    folder_b = load_output_folder(write_folder(tmp_path / "b", pairs_b, conversations_b, ["Doc two.", "Doc three."]))
    result = assemble([folder_a, folder_b], AssembleOptions(eval_fraction=0.0))
    files, removed = result["files"], result["stats"]["removed"]
    questions = [row["question"] for row in files[PLAIN_QA]]
    assert len(questions) == 7 and "Which consensus does Verus use?" in questions
    assert removed["near-duplicate questions"] == 2
    assert removed["duplicate conversations"] == 1
    assert removed["duplicate documents"] == 1
    assert len(files[SHAREGPT_NO_RAG]) == len(files[SHAREGPT_RAG]) == 4
    assert sorted(r["text"] for r in files[PRETRAINING_JSONL]) == ["Doc one.", "Doc three.", "Doc two."]
    assert not files["eval/plain_qa_list.jsonl"]


def test_a_conversation_of_already_asked_questions_is_dropped(tmp_path):
    pairs = topic_pairs("c", 4)
    reworded = [(q.replace("What", "what").rstrip("?") + ".", "Different answer text.") for q, _ in pairs[:2]]
    folder = load_output_folder(write_folder(tmp_path / "c", pairs, [pairs[:2], pairs[2:], reworded]))
    result = assemble([folder], AssembleOptions(eval_fraction=0.0))
    assert result["stats"]["removed"]["conversations repeating earlier questions"] == 1
    assert len(result["files"][SHAREGPT_NO_RAG]) == 2


def test_eval_split_holds_out_pairs_and_every_conversation_asking_them(tmp_path):
    pairs = topic_pairs("e", 40)
    conversations = [pairs[i:i + 2] for i in range(0, 30, 2)]  # 15 conversations; pairs 30-39 stand alone
    # A conversation that re-asks pair 31 inside a longer turn and pair 0 word for word.
    conversations.append([("Hello there. " + pairs[31][0] + " Thanks!", "Sure."), ("Also: " + pairs[0][0], "Yes.")])
    folder = load_output_folder(write_folder(tmp_path / "e", pairs, conversations))
    for seed in range(6):
        result = assemble([folder], AssembleOptions(eval_fraction=0.25, seed=seed))
        files = result["files"]
        held = {row["question"] for row in files["eval/plain_qa_list.jsonl"]}
        train = {row["question"] for row in files[PLAIN_QA]}
        assert held and not held & train
        assert len(held) + len(train) == 40
        assert 8 <= len(held) <= 15
        held_norm = {normalise(q) for q in held}
        for name in (SHAREGPT_NO_RAG, SHAREGPT_RAG):
            for row in files[name]:
                for turn in row["conversations"]:
                    if turn["from"] == "human":
                        text = f" {normalise(turn['value'])} "
                        assert not any(f" {q} " in text for q in held_norm), (seed, turn["value"])
        # Held-out conversations are kept for evaluation, with both forms.
        assert len(files["eval/simplified_data_no_rag.jsonl"]) == len(files["eval/simplified_data_rag.jsonl"])
        eval_chat = files["eval/qa_chat.jsonl"]
        assert {row["conversations"][1]["value"] for row in eval_chat} == held
        assert all(row["conversations"][0] == {"from": "system", "value": "SYSTEM"} for row in eval_chat)


def test_same_seed_same_folder_other_seed_other_split(tmp_path):
    folder_path = write_folder(tmp_path / "s", topic_pairs("s", 30), [], [f"Doc {i}." for i in range(10)])
    folders = [load_output_folder(folder_path)]

    def build(dest: Path, seed: int) -> dict[str, bytes]:
        write_training_folder(folders, dest, AssembleOptions(eval_fraction=0.2, seed=seed, prefer_tiktoken=False))
        return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*.jsonl"))}

    first, again, other = build(tmp_path / "d1", 1), build(tmp_path / "d2", 1), build(tmp_path / "d3", 2)
    assert first == again
    assert first["eval/plain_qa_list.jsonl"] != other["eval/plain_qa_list.jsonl"]
    # Rebuilding into an earlier assembly replaces it.
    assert build(tmp_path / "d1", 2) == other


def test_pairs_without_conversations_still_give_a_renderable_eval_set(tmp_path):
    folder = load_output_folder(write_folder(tmp_path / "q", topic_pairs("q", 10), []))
    files = assemble([folder], AssembleOptions(eval_fraction=0.2))["files"]
    assert len(files["eval/qa_chat.jsonl"]) == 2 and not files[SHAREGPT_NO_RAG]
    for row in files["eval/qa_chat.jsonl"]:
        assert check_conversation_shape(row["conversations"]) is None
        render_llama3(sharegpt_to_messages(row["conversations"]))


def test_unique_labels_tell_same_named_folders_apart(tmp_path):
    assert unique_labels([tmp_path / "wiki" / "output", tmp_path / "docs" / "output"]) == ["wiki/output", "docs/output"]
    assert unique_labels([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]


def test_bad_options_are_refused(tmp_path):
    folder = load_output_folder(write_folder(tmp_path / "o", topic_pairs("o", 3), []))
    with pytest.raises(TrainingDataError):
        assemble([folder], AssembleOptions(eval_fraction=1.0))
    with pytest.raises(TrainingDataError):
        assemble([folder], AssembleOptions(similarity=0.0))


# ------------------------------------------------------------------ the CLI on real pipeline output


def test_cli_writes_every_file_and_each_loads_with_datasets(assembled, tmp_path):
    datasets = pytest.importorskip("datasets")
    written = sorted(p.relative_to(assembled).as_posix() for p in assembled.rglob("*.jsonl"))
    for name in TRAIN_FILES:
        assert name in written
    assert "eval/plain_qa_list.jsonl" in written and "eval/qa_chat.jsonl" in written
    for name in written:
        loaded = datasets.load_dataset("json", data_files=str(assembled / name), split="train",
                                       cache_dir=str(tmp_path / "hf-cache"))
        rows = read_jsonl(assembled / name)
        assert len(loaded) == len(rows) > 0, name
        assert loaded[0] == rows[0], name  # same columns, nothing lost to schema inference


def test_every_conversation_renders_through_the_llama3_template(assembled):
    seen = 0
    for path in sorted(assembled.rglob("*.jsonl")):
        for row in read_jsonl(path):
            if "conversations" not in row:
                continue
            turns = row["conversations"]
            assert turns[0]["from"] == "system", path
            assert [t["from"] for t in turns[1:]] == ["human", "gpt"] * (len(turns[1:]) // 2), path
            assert len(turns) % 2 == 1
            text = render_llama3(sharegpt_to_messages(turns))
            assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
            assert text.count("<|eot_id|>") == len(turns)
            assert text.endswith("<|eot_id|>")
            seen += 1
    assert seen >= 4


def test_assembled_folder_deduplicates_across_runs_and_keeps_eval_unseen(outputs, assembled):
    manifest = json.loads((assembled / "manifest.json").read_text(encoding="utf-8"))
    removed = manifest["removed"]
    # staking.md was in both runs: its document, pairs and conversation are kept once.
    assert removed["duplicate documents"] == 1
    assert removed["near-duplicate questions"] >= 1
    assert removed["duplicate conversations"] == 1
    documents = read_jsonl(assembled / PRETRAINING_JSONL)
    assert len(documents) == 3 and len({d["text"] for d in documents}) == 3
    held = {normalise(r["question"]) for r in read_jsonl(assembled / "eval" / PLAIN_QA)}
    train = {normalise(r["question"]) for r in read_jsonl(assembled / PLAIN_QA)}
    assert held and not held & train
    for name in (SHAREGPT_NO_RAG, SHAREGPT_RAG):
        for row in read_jsonl(assembled / name):
            for turn in row["conversations"]:
                if turn["from"] == "human":
                    assert normalise(turn["value"]) not in held
    # Pairs in training plus held out plus removed duplicates account for every pair read.
    read = sum(len(read_jsonl(folder / PLAIN_QA)) for folder in outputs)
    assert len(held) + len(train) + removed["near-duplicate questions"] == read


def test_dataset_card_reports_sizes_sources_tokens_and_prompts(outputs, assembled):
    card = (assembled / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((assembled / "manifest.json").read_text(encoding="utf-8"))
    for name, entry in manifest["files"].items():
        assert f"| `{name}` | {entry['rows']:,} | {entry['tokens']:,} |" in card
        assert entry["tokens"] > 0
    for folder in outputs:
        assert str(folder.resolve()) in card
    assert "Tokens: " in card and manifest["token_count_method"] in card
    assert "seed 7" in card
    steps = {entry["step"] for entry in manifest["prompts"]}
    for step in ("qatuples_gen_no_filenames", "check_question", "check_answer",
                 "check_qatuple_context_no_filenames", "multi_turn_assistant_conversation"):
        assert step in steps
        assert f"| {step} | `prompts_used/{step}-" in card
    # The recovered prompt is the prompt file's fixed text, and the system prompts are there.
    generation = next(e for e in manifest["prompts"] if e["step"] == "qatuples_gen_no_filenames")
    recovered = (assembled / generation["file"]).read_text(encoding="utf-8")
    prompt_file = yaml.safe_load((REPO / "prompts" / "qatuples_gen_no_filenames.yaml").read_text(encoding="utf-8"))
    assert prompt_file[0]["content"].strip()[:200] in recovered
    system = [e for e in manifest["prompts"] if e["step"].startswith("final system prompt")]
    assert len(system) == 2
    rag = next(e for e in system if "RAG," in e["step"])
    assert "{data}" in (assembled / rag["file"]).read_text(encoding="utf-8")


def test_cli_errors_exit_2(tmp_path, outputs):
    missing = run_cli(str(tmp_path / "nope"), "--dest", str(tmp_path / "d"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi", encoding="utf-8")
    empty = run_cli(str(tmp_path / "empty"), "--dest", str(tmp_path / "d"), cwd=tmp_path)
    assert empty.returncode == 2 and "holds no datasets" in empty.stderr
    inside = run_cli(str(outputs[0]), "--dest", str(outputs[0] / "train"), cwd=tmp_path)
    assert inside.returncode == 2 and "outside" in inside.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me", encoding="utf-8")
    busy = run_cli(str(outputs[0]), "--dest", str(tmp_path / "busy"), cwd=tmp_path)
    assert busy.returncode == 2 and (tmp_path / "busy" / "mine.txt").is_file()
    twice = run_cli(str(outputs[0]), str(outputs[0]), "--dest", str(tmp_path / "d"), cwd=tmp_path)
    assert twice.returncode == 2
    bad = run_cli(str(outputs[0]), "--dest", str(tmp_path / "d"), "--eval-fraction", "1.5", cwd=tmp_path)
    assert bad.returncode == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / PLAIN_QA).write_text('{"question": "q", "answer": "a"}\nnot json\n', encoding="utf-8")
    result = run_cli(str(broken), "--dest", str(tmp_path / "d"), cwd=tmp_path)
    assert result.returncode == 2 and f"{PLAIN_QA}:2" in result.stderr
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ the axolotl config

# Keys of axolotl's config schema (axolotl 0.19, src/axolotl/utils/schemas/: config.py,
# model.py, training.py, datasets.py) that the config uses or may be edited to use.
# Deprecated spellings (flash_attention: true, type: sharegpt) are left out on purpose.
AXOLOTL_TOP_LEVEL_KEYS = {
    "base_model", "base_model_config", "tokenizer_config", "tokenizer_type", "tokenizer_use_fast", "model_type",
    "trust_remote_code", "load_in_8bit", "load_in_4bit", "adapter", "strict", "chat_template", "chat_template_jinja",
    "default_system_message", "datasets", "test_datasets", "shuffle_merged_datasets", "dataset_prepared_path",
    "dataset_processes", "val_set_size", "output_dir", "sequence_len", "sample_packing", "eval_sample_packing",
    "pad_to_sequence_len", "train_on_inputs", "group_by_length", "micro_batch_size", "gradient_accumulation_steps",
    "eval_batch_size", "num_epochs", "max_steps", "learning_rate", "lr_scheduler", "cosine_min_lr_ratio",
    "warmup_steps", "warmup_ratio", "weight_decay", "max_grad_norm", "optimizer", "optim_args",
    "optim_target_modules", "bf16", "fp16", "tf32", "gradient_checkpointing", "gradient_checkpointing_kwargs",
    "attn_implementation", "logging_steps", "evals_per_epoch", "eval_steps",
    "saves_per_epoch", "save_steps", "save_total_limit", "save_safetensors", "special_tokens", "eot_tokens",
    "fix_untrained_tokens", "seed", "wandb_project", "wandb_entity", "wandb_name", "wandb_mode", "deepspeed",
    "fsdp", "fsdp_config", "resume_from_checkpoint", "auto_resume_from_checkpoints", "hub_model_id",
    "early_stopping_patience", "loss_watchdog_threshold", "loss_watchdog_patience", "unfrozen_parameters",
}
AXOLOTL_DATASET_KEYS = {
    "path", "split", "type", "ds_type", "data_files", "name", "field", "field_messages", "message_property_mappings",
    "roles", "roles_to_train", "train_on_eos", "chat_template", "chat_template_jinja", "drop_system_message",
    "shards", "shards_idx",
}
GALORE_OPTIMIZERS = {
    "galore_adamw", "galore_adamw_8bit", "galore_adafactor",
    "galore_adamw_layerwise", "galore_adamw_8bit_layerwise", "galore_adafactor_layerwise",
}


def load_axolotl_config() -> dict:
    return yaml.safe_load(AXOLOTL_CONFIG.read_text(encoding="utf-8"))


def test_axolotl_config_keys_match_the_documented_schema():
    config = load_axolotl_config()
    assert set(config) <= AXOLOTL_TOP_LEVEL_KEYS, set(config) - AXOLOTL_TOP_LEVEL_KEYS
    for dataset in config["datasets"] + config["test_datasets"]:
        assert set(dataset) <= AXOLOTL_DATASET_KEYS, set(dataset) - AXOLOTL_DATASET_KEYS
    # A full finetune with GaLore, not LoRA.
    assert not config.get("adapter")
    assert config["optimizer"] in GALORE_OPTIMIZERS
    assert config["optim_target_modules"]
    assert set(config["optim_args"]) <= {"rank", "update_proj_gap", "scale", "proj_type"}
    assert "llama-3" in config["base_model"].lower() or "llama3" in config["base_model"].lower()
    assert isinstance(config["learning_rate"], float) and 0 < config["learning_rate"] < 1e-3
    assert config["sample_packing"] is True and config["sequence_len"] >= 2048
    # Two of micro_batch_size / gradient_accumulation_steps / batch_size (axolotl requires it).
    assert config["micro_batch_size"] and config["gradient_accumulation_steps"]
    assert config["chat_template"] == "llama3"


def test_axolotl_config_trains_on_what_the_assembler_writes(assembled):
    config = load_axolotl_config()
    by_file = {Path(d["path"]).name: d for d in config["datasets"]}
    assert set(by_file) == {PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG}
    assert by_file[PRETRAINING_JSONL]["type"] == "completion"
    assert by_file[PRETRAINING_JSONL].get("field", "text") == "text"
    for dataset in config["datasets"] + config["test_datasets"]:
        assert dataset["ds_type"] == "json"
        relative = Path(dataset["path"]).relative_to("training_data")
        assert (assembled / relative).is_file(), relative
        if dataset["type"] == "chat_template":
            assert dataset["field_messages"] == "conversations"
            assert dataset["message_property_mappings"] == {"role": "from", "content": "value"}
            assert dataset["roles"] == {"system": ["system"], "user": ["human"], "assistant": ["gpt"]}
    assert [Path(d["path"]).relative_to("training_data").as_posix() for d in config["test_datasets"]] == [
        "eval/qa_chat.jsonl"
    ]


def test_axolotl_config_explains_its_settings():
    text = AXOLOTL_CONFIG.read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#")).lower()
    for topic in ("learning rate", "epoch", "sequence", "packing", "galore"):
        assert topic in comments, topic


def _axolotl_python() -> str | None:
    if importlib.util.find_spec("axolotl") is not None:
        return sys.executable
    return os.environ.get("AXOLOTL_PYTHON") or None


@pytest.mark.skipif(_axolotl_python() is None, reason="axolotl is not installed (set AXOLOTL_PYTHON to a python that has it)")
def test_axolotl_own_loader_accepts_the_config():
    """axolotl's pydantic schema and validators, as `axolotl train` applies them
    (validate_config), without loading a model or tokenizer."""
    script = CONFIG_DIR / "validate_with_axolotl.py"
    result = subprocess.run([_axolotl_python(), str(script), str(AXOLOTL_CONFIG)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
