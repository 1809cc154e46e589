"""How the fake model server treats a decoding constraint, as real servers do.

Every constraint it is sent must be well-formed, whether or not it honours it: a
grammar must parse (llama.cpp refuses a bad one, and llama-cpp-python's server
even dies on it), and a JSON schema must be one OpenAI's strict mode accepts
(an object whose properties are all required, no others). A malformed one gets
HTTP 400, so CI covers the request side of constrained output.

A server honours the kinds (or fields) it is told to (`honours`): its answer is then one the
constraint allows, as constrained decoding guarantees. The answer it would have
given (imperfections included) is kept when the constraint allows it; otherwise
the good answer, then the shortest text the grammar allows. Under a JSON schema
the answer is the step's JSON (step_formats.from_text) or the schema's smallest
instance, within the schema's length and item bounds. In llama-cpp-python's form
(json_object) line breaks inside strings are written raw, as its JSON grammar lets
a model write them. Fields it does not honour are ignored, or refused with HTTP 400 as
OpenAI refuses unknown arguments (`refuse_unknown`); fields named in `fails` get HTTP
500, as llama-cpp-python answers a response_format of type json_schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from generation_functions import gbnf
from generation_functions.errors import ParseError
from generation_functions.steps import BY_NAME, EVALUATION_STEPS

GRAMMAR_FIELDS = ("grammar", "guided_grammar", "ebnf")
_FORMAT_OF = {step.prompt_name: step.output_format for step in (*BY_NAME.values(), *EVALUATION_STEPS)}


class Refused(Exception):
    """The request is refused with HTTP 400 and this message."""


@dataclass(frozen=True)
class SentConstraint:
    field: str
    kind: str  # "grammar" | "json_schema"
    grammar: Optional[gbnf.Grammar] = None
    schema: Optional[dict] = None


def read_constraint(body: dict) -> Optional[SentConstraint]:
    """The constraint a request body carries (Refused when it is malformed), or None."""
    for field in GRAMMAR_FIELDS:
        if field in body:
            return SentConstraint(field, "grammar", grammar=_grammar(body[field]))
    outputs = body.get("structured_outputs")
    if isinstance(outputs, dict) and "grammar" in outputs:
        return SentConstraint("structured_outputs", "grammar", grammar=_grammar(outputs["grammar"]))
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object" and "schema" in response_format:
        # llama-cpp-python's form: the schema beside the type; it keeps to length bounds.
        check_schema(response_format["schema"], bounds_allowed=True)
        return SentConstraint("json_object", "json_schema", schema=response_format["schema"])
    if isinstance(response_format, dict) and response_format.get("type") in ("json_schema", "json_object"):
        wrapper = response_format.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, dict) and "schema" in wrapper else wrapper
        check_schema(schema)
        return SentConstraint("response_format", "json_schema", schema=schema)
    return None


def _grammar(text: Any) -> gbnf.Grammar:
    if not isinstance(text, str):
        raise Refused("grammar must be a string")
    try:
        return gbnf.parse(text)
    except gbnf.GrammarError as exc:
        raise Refused(f"failed to parse grammar: {exc}") from None


BOUND_KEYWORDS = {"minLength": "string", "maxLength": "string", "minItems": "array", "maxItems": "array"}


def check_schema(schema: Any, where: str = "schema", bounds_allowed: bool = False) -> None:
    """OpenAI strict mode's rules for the keywords the project uses; length bounds only where
    the server turns the schema into a grammar (they are not in OpenAI's strict subset)."""
    if not isinstance(schema, dict):
        raise Refused(f"{where} must be an object")
    kind = schema.get("type")
    for keyword, bounded_kind in BOUND_KEYWORDS.items():
        if keyword in schema:
            if not bounds_allowed:
                raise Refused(f"{where}: {keyword} is not supported in strict mode")
            if kind != bounded_kind or not isinstance(schema[keyword], int) or schema[keyword] < 0:
                raise Refused(f"{where}: {keyword} must be a whole number on a {bounded_kind}")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            raise Refused(f"{where}: an object needs properties")
        if schema.get("additionalProperties") is not False:
            raise Refused(f"{where}: additionalProperties must be false")
        if sorted(schema.get("required") or []) != sorted(properties):
            raise Refused(f"{where}: every property must be required")
        for name, sub in properties.items():
            check_schema(sub, f"{where}.{name}", bounds_allowed)
    elif kind == "array":
        check_schema(schema.get("items"), f"{where}[]", bounds_allowed)
    elif kind == "string":
        enum = schema.get("enum")
        if enum is not None and (not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum)):
            raise Refused(f"{where}: enum must be a non-empty list of strings")
    else:
        raise Refused(f"{where}: unsupported type {kind!r}")


def smallest_instance(schema: dict) -> Any:
    kind = schema["type"]
    if kind == "object":
        return {name: smallest_instance(sub) for name, sub in schema["properties"].items()}
    if kind == "array":
        return []
    return schema["enum"][0] if "enum" in schema else ""


def constrained_answer(constraint: SentConstraint, step: str, answer: str, good: Callable[[], str]) -> str:
    """What a server that honours the constraint answers instead of `answer`."""
    if constraint.kind == "grammar":
        # A model held to a grammar ends where the grammar lets it: the line break after the
        # last turn, which no grammar allows, is never written.
        for text in (answer, answer.strip(), good(), good().strip()):
            if constraint.grammar.matches(text):
                return text
        return constraint.grammar.example()
    output_format = _FORMAT_OF.get(step)
    instance = smallest_instance(constraint.schema)
    if output_format is not None:
        for text in (answer, good()):
            try:
                decoded = output_format.from_text(text)
            except ParseError:
                continue
            if constraint.schema["properties"].get("reasoning", {}).get("type") == "array":
                decoded = output_format.bounded_answer(decoded)  # the bounded schema's reasoning lines
            if within_bounds(decoded, constraint.schema):
                instance = decoded
                break
    written = json.dumps(instance)
    if constraint.field == "json_object":
        # Each newline escape (not an escaped backslash before an n) becomes a raw line break.
        written = re.sub(r"(?<!\\)((?:\\\\)*)\\n", lambda m: m.group(1) + "\n", written)
    return written


def within_bounds(instance: Any, schema: dict) -> bool:
    """Whether an instance keeps to the schema's length and item bounds, all the way down."""
    kind = schema["type"]
    if kind == "object":
        return all(within_bounds(instance[name], sub) for name, sub in schema["properties"].items())
    if kind == "array":
        return schema.get("minItems", 0) <= len(instance) <= schema.get("maxItems", len(instance)) and all(
            within_bounds(item, schema["items"]) for item in instance
        )
    return schema.get("minLength", 0) <= len(instance) <= schema.get("maxLength", len(instance))
