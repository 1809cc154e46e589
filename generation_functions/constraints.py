"""Constrained decoding: how a request asks the server to keep to a step's output format.

Servers take a decoding constraint in different fields. A grammar of the marker
protocol (GBNF) keeps the prompts and parsers exactly as they are; a JSON schema
is for servers that only constrain JSON, and its answers are turned back into the
protocol's text before they are parsed (generation_functions/step_formats.py).

SYSTEM.CONSTRAINED_OUTPUT picks the kind (auto | grammar | json_schema | off).
Which field of that kind a server honours is found by a probe at the start of a
run and by `processing.py --check` (generation_functions/constraint_probe.py):
a server that ignores a field answers as if it were not there, so only a tiny
constrained request tells.

This module sits below the table of steps: it imports nothing of the project's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

GRAMMAR = "grammar"
JSON_SCHEMA = "json_schema"
AUTO = "auto"
OFF = "off"
SETTINGS = (AUTO, GRAMMAR, JSON_SCHEMA, OFF)


@dataclass(frozen=True)
class ConstraintField:
    """One way a server takes a constraint: where it goes in the request body."""

    name: str  # as recorded and reported; also the body's top-level key
    kind: str  # GRAMMAR or JSON_SCHEMA
    servers: str  # who takes it, for messages and the README
    # A JSON schema field whose server keeps to a schema's length and item bounds (it turns the
    # schema into a grammar): the schema carries the grammar's bounds (step_formats.bounded_schema).
    takes_bounds: bool = False


# In the order a probe tries them: grammars first (the protocol itself, nothing to convert),
# the newer vLLM field before the one it replaced.
FIELDS: tuple[ConstraintField, ...] = (
    ConstraintField("grammar", GRAMMAR, "llama.cpp's llama-server and llama-cpp-python"),
    ConstraintField("structured_outputs", GRAMMAR, "vLLM 0.10 and later"),
    ConstraintField("guided_grammar", GRAMMAR, "vLLM before 0.12"),
    ConstraintField("ebnf", GRAMMAR, "SGLang"),
    ConstraintField("response_format", JSON_SCHEMA, "OpenAI, vLLM, Ollama, SGLang, Cohere"),
    # llama-cpp-python's own form (it answers the type json_schema with HTTP 500): the schema
    # beside the type json_object, turned into a grammar by the server.
    ConstraintField("json_object", JSON_SCHEMA, "llama-cpp-python", takes_bounds=True),
)
BY_NAME: dict[str, ConstraintField] = {field.name: field for field in FIELDS}


def candidate_fields(setting: str, mode: str) -> tuple[ConstraintField, ...]:
    """The fields worth probing for a CONSTRAINED_OUTPUT setting; Cohere takes JSON only."""
    if setting == OFF:
        return ()
    kinds = {GRAMMAR, JSON_SCHEMA} if setting == AUTO else {setting}
    if mode == "cohere":  # Cohere takes its JSON schema in one form only
        return tuple(field for field in FIELDS if field.name == "response_format" and field.kind in kinds)
    return tuple(field for field in FIELDS if field.kind in kinds)


@dataclass(frozen=True)
class Constraint:
    """What one request carries: a step's grammar or schema, in the field its server honours."""

    field: str  # a ConstraintField name
    name: str  # the step's key: the schema's name, and a label in messages
    text: str  # GBNF text, or the JSON schema as compact JSON text, its keys in the schema's order

    @property
    def kind(self) -> str:
        return BY_NAME[self.field].kind

    def fingerprint(self) -> str:
        """Short and stable: part of a call's identity, so a changed grammar asks afresh."""
        digest = hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]
        return f"{self.field}:{digest}"


def constraint_for(
    field: Optional[str], name: str, grammar: str, schema: dict, bounded_schema: Optional[dict] = None
) -> Optional[Constraint]:
    """The constraint a step's requests carry in `field` (None: unconstrained). `bounded_schema`,
    the schema with the grammar's bounds, goes to a field whose server keeps to them."""
    if field is None:
        return None
    if BY_NAME[field].kind == GRAMMAR:
        return Constraint(field, name, grammar)
    if BY_NAME[field].takes_bounds and bounded_schema is not None:
        schema = bounded_schema
    # Keys keep the schema's order: servers generate properties in that order, and the reasoning
    # must come before the verdict it leads to (sorted, "answer" and "grade" came first).
    return Constraint(field, name, json.dumps(schema, separators=(",", ":")))


def is_bounded(constraint: Constraint) -> bool:
    """Whether the constraint holds the model to the step's grammar bounds (a grammar, or a schema
    that carries them), so max_tokens must leave room for the longest text they allow."""
    field = BY_NAME[constraint.field]
    return field.kind == GRAMMAR or field.takes_bounds


def openai_fields(constraint: Constraint) -> dict:
    """The body fields of an OpenAI-compatible request (chat or text completions)."""
    if constraint.field == "structured_outputs":
        return {"structured_outputs": {"grammar": constraint.text}}
    if constraint.field == "response_format":
        schema = json.loads(constraint.text)
        return {"response_format": {"type": "json_schema", "json_schema": {"name": _schema_name(constraint.name), "schema": schema, "strict": True}}}
    if constraint.field == "json_object":
        return {"response_format": {"type": "json_object", "schema": json.loads(constraint.text)}}
    return {constraint.field: constraint.text}


def cohere_fields(constraint: Constraint) -> dict:
    """The keyword arguments of Cohere's chat: JSON mode with a schema (it takes no grammar)."""
    if constraint.kind != JSON_SCHEMA:
        raise ValueError(f"Cohere takes no grammar (asked to send {constraint.field})")
    return {"response_format": {"type": "json_object", "json_schema": json.loads(constraint.text)}}


def _schema_name(name: str) -> str:
    """OpenAI allows letters, digits, '_' and '-' (64 at most) in a schema's name."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "output"


# The probe's constraint: an answer no model writes by chance, so only a server that
# honours the field produces it.
PROBE_NAME = "verus_probe"
PROBE_GRAMMAR = 'root ::= "verus-probe-" [0-9] [0-9] [0-9]\n'
PROBE_SCHEMA = {
    "type": "object",
    "properties": {"probe": {"type": "string", "enum": ["verus-probe-ok"]}},
    "required": ["probe"],
    "additionalProperties": False,
}


def probe_answer_honoured(kind: str, text: str) -> bool:
    """Whether a probe's answer is the one its constraint forces."""
    text = (text or "").strip()
    if kind == GRAMMAR:
        return len(text) == 15 and text.startswith("verus-probe-") and text[12:].isdigit()
    try:
        return json.loads(strip_code_fence(text)) == {"probe": "verus-probe-ok"}
    except ValueError:
        return False


def strip_code_fence(text: str) -> str:
    """A JSON answer some servers wrap in ```json ... ``` (Ollama, some cloud models) without the fence."""
    stripped = text.strip()
    if stripped.startswith("```"):
        first_newline = stripped.find("\n")
        body = stripped[first_newline + 1:] if first_newline != -1 else ""
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]
        return body.strip()
    return stripped
