"""Each step's output format as a decoding constraint: the twin of its parser.

For every step there is
- a GBNF grammar of the marker protocol its parser reads (free reasoning, then the
  verdict line; QUESTION/ANSWER blocks; User/AI Assistant turns), sent to servers
  that take grammars. Prompts and parsers stay as they are;
- a JSON schema with the same content, for servers that constrain JSON only, and
  the two functions between a JSON answer and the protocol's text: `to_text`
  renders an answer so the step's own parser reads it (so JSON answers become the
  same typed values), `from_text` goes the other way (tests, the fake server).

The grammars bound what is free: reasoning has at most a few dozen lines of up to 400
characters (none opening with a code fence or a quote) before the verdict must come, so a small model that rambles is
made to conclude before max_tokens instead of being cut off without a verdict.
The bounds are wide enough for every few-shot example of the default prompt sets
and for the recorded outputs of a 70B model (tests/test_step_formats.py checks
both). Rules are not recursive, so tests can check texts against them without
llama.cpp (generation_functions/gbnf.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from generation_functions import output_processors as parsers
from generation_functions.constraints import strip_code_fence
from generation_functions.errors import ParseError


@dataclass(frozen=True)
class OutputFormat:
    grammar: str  # GBNF, root rule `root`
    schema: dict  # JSON schema (strict: every property required, no others)
    to_text: Callable[[Any], str]  # a JSON answer (already decoded) -> the protocol's text
    from_text: Callable[[str], dict]  # the protocol's text -> a JSON answer (raises ParseError)
    # What the grammar allows, in words: for a person whose prompt's example it refuses.
    shape: str
    # The longest text the grammar allows, where it is short enough to matter: a step constrained
    # by the grammar gets max_tokens enough for it, so a rambling model reaches its verdict
    # instead of being cut off just before it (None: not bounded so, e.g. a list of pairs).
    longest_chars: Optional[int] = None
    # The grammar's bounds in JSON schema words, for servers that turn a schema into a grammar and
    # keep to them (llama-cpp-python's json_object form), so a model that rambles or goes on
    # listing must close its JSON before max_tokens. They stay out of `schema`: OpenAI's strict
    # mode has no length or item bounds.
    # - list_bound: (property, minItems, maxItems) of a list (pairs, exchanges);
    # - nonempty_items: the list items' strings that must not be empty (minLength 1): an exchange
    #   with an empty user message is an assistant talking to itself;
    # - reasoning_lines: the reasoning becomes a list of at most this many lines of at most
    #   LINE_CHARS characters, as in the grammar. One long string cannot be bounded: llama-cpp-python
    #   writes maxLength as nested optional characters, and llama.cpp does not load that grammar for
    #   the lengths reasoning needs.
    list_bound: Optional[tuple[str, int, int]] = None
    nonempty_items: tuple[str, ...] = ()
    reasoning_lines: Optional[int] = None

    def bounded_schema(self) -> dict:
        """The schema with the grammar's bounds written in."""
        schema = json.loads(json.dumps(self.schema))
        properties = schema["properties"]
        if self.list_bound is not None:
            name, least, most = self.list_bound
            properties[name].update({"minItems": least, "maxItems": most} if least else {"maxItems": most})
            for item in self.nonempty_items:
                properties[name]["items"]["properties"][item]["minLength"] = 1
        if self.reasoning_lines is not None:
            properties["reasoning"] = {
                "type": "array",
                "description": properties["reasoning"]["description"] + ", one line per item",
                "items": {"type": "string", "maxLength": LINE_CHARS},
                "maxItems": self.reasoning_lines,
            }
        return schema

    def bounded_answer(self, answer: dict) -> dict:
        """A JSON answer in the bounded schema's shape: its reasoning as its non-blank lines."""
        if self.reasoning_lines is None or not isinstance(answer.get("reasoning"), str):
            return answer
        lines = [line.strip() for line in answer["reasoning"].splitlines() if line.strip()]
        return {**answer, "reasoning": lines}

    def over_bounds(self, answer: dict) -> str:
        """Why a JSON answer's list or reasoning lies outside the bounded schema ("" if neither does).
        Empty items are left to the parser, which reads no turn or pair from them."""
        if self.list_bound is not None:
            name, least, most = self.list_bound
            size = len(answer.get(name) or ())
            if not least <= size <= most:
                return f"its {name!r} has {size} items, the bounded schema allows {least} to {most}"
        lines = self.bounded_answer(answer).get("reasoning")
        if self.reasoning_lines is not None and isinstance(lines, list):
            if len(lines) > self.reasoning_lines:
                return f"its reasoning has {len(lines)} lines, the bounded schema allows {self.reasoning_lines}"
            if any(len(line) > LINE_CHARS for line in lines):
                return f"a line of its reasoning is longer than {LINE_CHARS} characters"
        return ""


# Pieces every grammar shares. A "gap" is a line break or a blank line or two.
_COMMON = r"""
gap ::= "\n" | "\n\n" | "\n\n\n"
# A reasoning line may not open a code fence or a quote: the parsers do not read markers inside
# those, so a verdict after an unclosed fence would be lost.
line ::= [ \t]{0,8} [^\n`~> \t] [^\n]{0,399}
# What comes before a verdict word on its line ends where a word does, so the parser sees the word.
lead ::= ([^\n`~> \t] [^\n]{0,299} [ :*(\t])?
"""
# A line of a body that cannot be taken for a marker: it does not open with "**".
_BODY = r"""
body ::= [^\n]{1,1000} (gap body-line){0,16}
body-line ::= ([^\n*] | "*" [^\n*]) [^\n]{0,1000}
sep ::= " " | gap
"""


def _grammar(*parts: str) -> str:
    return "\n".join(part.strip("\n") for part in parts) + "\n"


LINE_CHARS, LEAD_CHARS = 400, 300  # the `line` and `lead` rules' bounds


def _reasoned(verdict_rule: str, lines: int) -> str:
    """Free reasoning of at most `lines` lines, then a line that ends in the verdict."""
    return _grammar(f"root ::= (line gap){{0,{lines}}} verdict", verdict_rule, _COMMON)


def _reasoning_shape(lines: int) -> str:
    return f"at most {lines} lines of reasoning (each up to {LINE_CHARS} characters, none opening with ` ~ or >)"


def _longest_reasoned(lines: int, verdict_chars: int = 120) -> int:
    return lines * (LINE_CHARS + 3) + LEAD_CHARS + verdict_chars


def _string(description: str) -> dict:
    return {"type": "string", "description": description}


def _object(**properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _field(answer: Any, name: str, kind: type = str) -> Any:
    if not isinstance(answer, dict):
        raise ParseError(f"the JSON answer is not an object: {parsers.preview(str(answer))}")
    value = answer.get(name)
    if not isinstance(value, kind):
        raise ParseError(f"the JSON answer has no {name!r} {kind.__name__}: {parsers.preview(json.dumps(answer))}")
    return value


def _reasoning(answer: Any) -> str:
    """The reasoning of a JSON answer: one string, or a list of lines (the bounded schema's form)."""
    value = answer.get("reasoning") if isinstance(answer, dict) else None
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(line.strip() for line in value).strip()
    return _field(answer, "reasoning").strip()


def _choice(answer: Any, name: str, choices: tuple[str, ...]) -> str:
    value = _field(answer, name)
    if value not in choices:
        raise ParseError(f"the JSON answer's {name!r} is {value!r}, not one of {', '.join(choices)}")
    return value


def _reasoning_of(text: str) -> str:
    """The protocol text before its last line (the verdict line)."""
    lines = parsers._normalize(text).rstrip().splitlines()
    return "\n".join(lines[:-1]).strip()


# ---------------------------------------------------------------- chunk filter

_SUITABILITY = ("SUITABLE", "UNSUITABLE")


def _filter_text(answer: Any) -> str:
    verdict = _choice(answer, "verdict", _SUITABILITY)
    line = "SUITABLE" if verdict == "SUITABLE" else f"UNSUITABLE: {_field(answer, 'kind').strip() or 'unsuitable'}"
    return f"{_reasoning(answer)}\n\n{line}".strip()


def _filter_json(text: str) -> dict:
    suitable, kind = parsers.parse_chunk_filter(text)
    return {"reasoning": _reasoning_of(text), "verdict": "SUITABLE" if suitable else "UNSUITABLE", "kind": kind}


CHUNK_FILTER = OutputFormat(
    grammar=_reasoned(
        'verdict ::= lead ("SUITABLE" | "UNSUITABLE" (":" " "? [^\\n]{1,100})?) [.*]{0,3}', lines=4
    ),
    schema=_object(
        reasoning=_string("what the chunk holds, briefly"),
        verdict={"type": "string", "enum": list(_SUITABILITY)},
        kind=_string("for UNSUITABLE: what kind of chunk it is; empty for SUITABLE"),
    ),
    to_text=_filter_text,
    from_text=_filter_json,
    shape=_reasoning_shape(4) + ", then a line that ends in SUITABLE, or in UNSUITABLE: and the kind of chunk",
    longest_chars=_longest_reasoned(4),
    reasoning_lines=4,
)


# ---------------------------------------------------------------- question generation


def _pairs_text(answer: Any) -> str:
    pairs = _field(answer, "pairs", list)
    written = [(_field(pair, "question").strip(), _field(pair, "answer").strip()) for pair in pairs]
    written = [(question, reply) for question, reply in written if question and reply]
    if not written:
        return "NO QUESTIONS" if not pairs else ""
    return parsers.format_question_answer_list(written)


def _pairs_json(text: str) -> dict:
    normalized = parsers._normalize(text)
    pairs = parsers._pair_blocks(normalized)  # kind labels stay in the question, as the text has them
    if not pairs:
        parsers.parse_question_generation(text)  # raises, or says NO QUESTIONS
    return {"pairs": [{"question": question, "answer": reply} for question, reply in pairs]}


QUESTION_GENERATION = OutputFormat(
    grammar=_grammar(
        'root ::= pair (gap pair){0,11} | "NO QUESTIONS" [^\\n]{0,300}',
        'pair ::= "**QUESTION:**" sep body gap "**ANSWER:**" sep body',
        _BODY,
        _COMMON,
    ),
    schema=_object(
        pairs={
            "type": "array",
            "items": _object(question=_string("a question a user might ask"), answer=_string("its answer, from the text")),
        }
    ),
    to_text=_pairs_text,
    from_text=_pairs_json,
    shape="1 to 12 blocks of **QUESTION:** then **ANSWER:**, with nothing before the first, "
    "no body line opening with ** and at most 17 lines per body; or NO QUESTIONS",
    # At least one pair: under JSON, SmolLM2 closed the list at once (which reads as NO QUESTIONS)
    # in 4 of 5 question generations, where under the grammar it wrote pairs. Whether a chunk has
    # anything to ask is the chunk filter's call.
    list_bound=("pairs", 1, 12),
    nonempty_items=("question", "answer"),
)


# ---------------------------------------------------------------- question and answer checks


def _verdict_format(positive: str, negative: str, parse: Callable[[str], bool]) -> OutputFormat:
    verdicts = (positive, negative)

    def to_text(answer: Any) -> str:
        return f"{_reasoning(answer)}\n\n{_choice(answer, 'verdict', verdicts)}".strip()

    def from_text(text: str) -> dict:
        return {"reasoning": _reasoning_of(text), "verdict": positive if parse(text) else negative}

    return OutputFormat(
        grammar=_reasoned(f'verdict ::= lead ("{positive}" | "{negative}") [.*!]{{0,3}}', lines=20),
        schema=_object(reasoning=_string("the reasoning, step by step"), verdict={"type": "string", "enum": list(verdicts)}),
        to_text=to_text,
        from_text=from_text,
        shape=_reasoning_shape(20) + f", then a line that ends in {positive} or {negative}",
        longest_chars=_longest_reasoned(20),
        reasoning_lines=20,
    )


QUESTION_CHECK = _verdict_format("RELEVANT", "IRRELEVANT", parsers.parse_question_check)
ANSWER_CHECK = _verdict_format("ACCURATE", "INACCURATE", parsers.parse_answer_check)


# ---------------------------------------------------------------- context repair

_JUDGMENTS = ("PASS", "REWORD", "FAIL")


def _repair_text(answer: Any) -> str:
    judgment = _choice(answer, "judgment", _JUDGMENTS)
    text = f"{_reasoning(answer)}\n\nFinal judgment: {judgment}".strip()
    if judgment == "REWORD":
        pair = [(_field(answer, "question").strip(), _field(answer, "answer").strip())]
        text += "\n\n### Question Rewording:\n" + parsers.format_question_answer_list(pair)
    return text


def _repair_json(text: str) -> dict:
    verdict, pair = parsers.parse_context_repair(text)
    normalized = parsers._normalize(text)
    judgments = list(parsers._FINAL_JUDGMENT.finditer(parsers._mask_quoted(normalized)))
    reasoning = normalized[: judgments[-1].start()].strip()
    question, reply = pair or ("", "")
    return {"reasoning": reasoning, "judgment": verdict.upper(), "question": question, "answer": reply}


CONTEXT_REPAIR = OutputFormat(
    grammar=_grammar(
        "root ::= (line gap){0,14} judgment",
        'judgment ::= [#* \\t-]{0,8} "Final " ("judgment" | "Judgment" | "judgement" | "Judgement") ":" [ *]{0,3} '
        '(("PASS" | "FAIL") [.*]{0,3} | "REWORD" [.*]{0,3} rewording)',
        'rewording ::= gap (heading gap)? "**QUESTION:**" sep body gap "**ANSWER:**" sep body',
        'heading ::= [#* ]{0,8} ("Question Rewording" | "Question rewording") [^\\n]{0,100}',
        _BODY,
        _COMMON,
    ),
    schema=_object(
        reasoning=_string("the reasoning, step by step"),
        judgment={"type": "string", "enum": list(_JUDGMENTS)},
        question=_string("for REWORD: the reworded question; empty otherwise"),
        answer=_string("for REWORD: the reworded answer; empty otherwise"),
    ),
    to_text=_repair_text,
    from_text=_repair_json,
    shape=_reasoning_shape(14) + ", then Final judgment: PASS or FAIL, or REWORD followed by "
    "### Question Rewording: and one **QUESTION:** / **ANSWER:** block",
    reasoning_lines=14,
)


# ---------------------------------------------------------------- conversation

# A JSON conversation is an optional greeting and then exchanges, each a user turn and the reply
# to it: a list of free turns would let a model write only assistant turns, which is no
# conversation (a small model did so in 3 of 4 JSON answers).


def _conversation_text(answer: Any) -> str:
    opening = _field(answer, "opening").strip()
    turns = [f"**AI Assistant:** {opening}"] if opening else []
    for exchange in _field(answer, "exchanges", list):
        for speaker, name in (("User", "user"), ("AI Assistant", "assistant")):
            message = _field(exchange, name).strip()
            if message:
                turns.append(f"**{speaker}:** {message}")
    return "\n\n".join(turns)


def _conversation_json(text: str) -> dict:
    """Turns as exchanges; a run of one speaker's turns becomes one message (as the check in
    code merges them), and assistant turns before the first user turn the greeting."""
    opening: list[str] = []
    exchanges: list[dict] = []
    for speaker, message in parsers.parse_conversation(text):
        if speaker == "User":
            if exchanges and not exchanges[-1]["assistant"]:
                exchanges[-1]["user"] += "\n\n" + message
            else:
                exchanges.append({"user": message, "assistant": ""})
        elif not exchanges:
            opening.append(message)
        else:
            reply = exchanges[-1]["assistant"]
            exchanges[-1]["assistant"] = f"{reply}\n\n{message}" if reply else message
    return {"opening": "\n\n".join(opening), "exchanges": exchanges}


CONVERSATION = OutputFormat(
    grammar=_grammar(
        "root ::= (heading gap)? (assistant gap)? user gap assistant (gap (user | assistant)){0,30}",
        'heading ::= "#" [#]{0,3} " " [^\\n]{1,200}',
        'user ::= "**User:**" sep body',
        'assistant ::= "**AI Assistant:**" sep body',
        _BODY,
        _COMMON,
    ),
    schema=_object(
        opening=_string("the AI Assistant's greeting before the user's first message; empty for none"),
        exchanges={
            "type": "array",
            "items": _object(user=_string("what the user says"), assistant=_string("the AI Assistant's reply")),
        },
    ),
    to_text=_conversation_text,
    from_text=_conversation_json,
    shape="an optional # heading, then **User:** and **AI Assistant:** turns beginning with a user turn "
    "(or one assistant greeting first), at most 33 turns, no body line opening with **",
    list_bound=("exchanges", 1, 16),
    nonempty_items=("user", "assistant"),
)


# ---------------------------------------------------------------- the evaluation judge

_GRADES = ("CORRECT", "PARTLY CORRECT", "WRONG", "DECLINED")


def _judge_text(answer: Any) -> str:
    grade = _choice(answer, "grade", _GRADES)
    reason = " ".join(_field(answer, "reason").split())
    text = _reasoning(answer)
    return f"{text}\n\nReason: {reason}\n{grade}".strip() if reason else f"{text}\n\n{grade}".strip()


def _judge_json(text: str) -> dict:
    grade, reason = parsers.parse_judgment(text)
    lines = [line for line in _reasoning_of(text).splitlines() if not line.strip(" *").lower().startswith("reason")]
    return {"reasoning": "\n".join(lines).strip(), "reason": reason, "grade": grade.upper()}


JUDGE = OutputFormat(
    grammar=_grammar(
        'root ::= (line gap){0,12} ("Reason:" " " [^\\n]{1,400} gap)? grade',
        'grade ::= lead ("CORRECT" | "PARTLY CORRECT" | "WRONG" | "DECLINED") [.*]{0,3}',
        _COMMON,
    ),
    schema=_object(
        reasoning=_string("the comparison with the reference, briefly"),
        reason=_string("the grade's reason in one line"),
        grade={"type": "string", "enum": list(_GRADES)},
    ),
    to_text=_judge_text,
    from_text=_judge_json,
    shape=_reasoning_shape(12) + ", an optional Reason: line, then a line that ends in "
    "CORRECT, PARTLY CORRECT, WRONG or DECLINED",
    longest_chars=_longest_reasoned(12) + 410,
    reasoning_lines=12,
)


def protocol_text(output_format: OutputFormat, answer: str) -> str:
    """The protocol's text of an answer: a JSON answer (from a server constrained by the schema)
    rendered for the step's parser; any other text as it is (the server fell back to plain
    output). Raises ParseError for JSON that is not the schema's."""
    body = strip_code_fence(answer)
    if not body.startswith("{"):
        return answer
    try:
        # Line breaks and tabs written raw inside a string: llama-cpp-python's JSON grammar lets a
        # model write them, and the meaning is plain, so they are read, not refused.
        decoded = json.loads(body, strict=False)
    except ValueError as exc:
        raise ParseError(f"the JSON answer does not parse ({exc.msg} at character {exc.pos})") from None
    return output_format.to_text(decoded)
