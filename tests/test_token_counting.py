"""The dataset card's token counts: a real tokenizer when one is given, tiktoken
only when its vocabulary is already cached, otherwise an estimate that says so.

The tokenizer is a real byte-level BPE trained here with the `tokenizers`
library (the one Hugging Face models ship as tokenizer.json), so nothing is
downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_assembly.chat_template import render_llama3, sharegpt_to_messages
from dataset_assembly.token_counting import (
    KIND_ESTIMATE,
    KIND_TOKENIZER,
    TokenCounter,
    TokenizerLoadError,
    tiktoken_cache_file,
)
from generation_functions.datasets import PRETRAINING_JSONL, SHAREGPT_NO_RAG
from tests.conftest import REPO
from tests.test_training_data import topic_pairs, write_folder

tokenizers = pytest.importorskip("tokenizers")

LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def train_tokenizer(folder: Path) -> Path:
    """A small byte-level BPE with the Llama 3 template tokens as special tokens,
    saved as a Hugging Face tokenizer.json in `folder`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=LLAMA3_SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [q + " " + a for q, a in topic_pairs("t", 50)] + ["Verus is a blockchain with VerusID and PBaaS."] * 5
    tokenizer.train_from_iterator(corpus, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def assemble(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "assemble_training_data.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=str(cwd))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_given_tokenizer_counts_every_file_exactly_and_the_card_says_so(tmp_path):
    tok_dir = train_tokenizer(tmp_path / "base-model")
    tokenizer = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    pairs = topic_pairs("t", 12)
    output = write_folder(tmp_path / "out", pairs, [pairs[0:2], pairs[2:4]], ["Verus has VerusID.", "PBaaS chains."])
    dest = tmp_path / "training_data"
    result = assemble(str(output), "--dest", str(dest), "--tokenizer", str(tok_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["token_count_kind"] == KIND_TOKENIZER
    assert str(tok_dir.resolve()) in manifest["token_count_method"] and "exact" in manifest["token_count_method"]
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert f"Tokens: {manifest['token_count_method']}" in card and "ESTIMATE" not in card

    documents = read_jsonl(dest / PRETRAINING_JSONL)
    expected = sum(len(tokenizer.encode(row["text"], add_special_tokens=False).ids) for row in documents)
    assert manifest["files"][PRETRAINING_JSONL]["tokens"] == expected
    conversations = read_jsonl(dest / SHAREGPT_NO_RAG)
    rendered = [render_llama3(sharegpt_to_messages(row["conversations"])) for row in conversations]
    expected = sum(len(tokenizer.encode(text, add_special_tokens=False).ids) for text in rendered)
    assert manifest["files"][SHAREGPT_NO_RAG]["tokens"] == expected
    # The template's special tokens count as one token each, as in the model.
    first = tokenizer.encode(rendered[0], add_special_tokens=False).tokens
    assert first[0] == "<|begin_of_text|>" and first.count("<|eot_id|>") == len(conversations[0]["conversations"])
    # The file path itself works as well as its folder.
    assert TokenCounter(tokenizer=tok_dir / "tokenizer.json").count(rendered[0]) == len(first)


def test_without_a_tokenizer_the_card_calls_the_counts_an_estimate(tmp_path):
    pairs = topic_pairs("e", 6)
    output = write_folder(tmp_path / "out", pairs, [pairs[0:2]])
    dest = tmp_path / "training_data"
    result = assemble(str(output), "--dest", str(dest), "--no-tiktoken", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["token_count_kind"] == KIND_ESTIMATE
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert "Tokens: an ESTIMATE of characters / 4" in card and "--tokenizer" in card
    text = read_jsonl(dest / PRETRAINING_JSONL)[0]["text"]
    assert manifest["files"][PRETRAINING_JSONL]["tokens"] == -(-len(text) // 4)


def test_tiktoken_is_not_used_when_its_vocabulary_would_have_to_be_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert tiktoken_cache_file().parent == tmp_path / "empty-cache"
    counter = TokenCounter(prefer_tiktoken=True)
    assert counter.kind == KIND_ESTIMATE and not counter.exact
    assert counter.count("x" * 9) == 3
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's way of turning its cache off
    assert tiktoken_cache_file() is None and TokenCounter().kind == KIND_ESTIMATE


def test_an_unreadable_tokenizer_is_a_clear_error(tmp_path):
    pairs = topic_pairs("b", 4)
    output = write_folder(tmp_path / "out", pairs, [])
    missing = assemble(str(output), "--dest", str(tmp_path / "d"), "--tokenizer", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode == 2 and "--tokenizer" in missing.stderr and "no such file" in missing.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not a tokenizer", encoding="utf-8")
    broken = assemble(str(output), "--dest", str(tmp_path / "d"), "--tokenizer", str(bad), cwd=tmp_path)
    assert broken.returncode == 2 and "not a tokenizer.json" in broken.stderr
    assert "Traceback" not in missing.stderr + broken.stderr
    assert not (tmp_path / "d").exists()
    with pytest.raises(TokenizerLoadError):
        TokenCounter(tokenizer=tmp_path / "nope")
