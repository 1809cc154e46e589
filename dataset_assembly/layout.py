"""The names inside an assembled training folder (the dataset file names come
from generation_functions.datasets, as the pipeline writes them)."""

from __future__ import annotations

from generation_functions.datasets import PLAIN_QA, PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG

EVAL_DIR = "eval"
PROMPTS_DIR = "prompts_used"
CARD = "README.md"
MANIFEST = "manifest.json"
EVAL_QA_CHAT = "qa_chat.jsonl"

# The three files the axolotl config trains on, in the config's order.
TRAINED_FILES = (PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG)
# Every file a folder may hold, with what it is (the card's table, in this order).
FILE_DESCRIPTIONS = {
    PRETRAINING_JSONL: "source documents, one per row (`completion` data)",
    SHAREGPT_NO_RAG: "conversations, plain system prompt (`chat_template` data)",
    SHAREGPT_RAG: "the same conversations, system prompt + source chunk",
    PLAIN_QA: "the question/answer pairs (not in the axolotl config; for your own use)",
    f"{EVAL_DIR}/{PLAIN_QA}": "held-out pairs",
    f"{EVAL_DIR}/{EVAL_QA_CHAT}": "held-out pairs as one-exchange conversations (axolotl `test_datasets`)",
    f"{EVAL_DIR}/{SHAREGPT_NO_RAG}": "held-out conversations, plain system prompt",
    f"{EVAL_DIR}/{SHAREGPT_RAG}": "held-out conversations with source chunk",
}
