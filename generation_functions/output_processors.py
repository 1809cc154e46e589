"""Turn the model's raw text for each pipeline step into typed values.

Every parser is a pure function of the response text. When the text holds no
usable answer it raises ParseError instead of guessing a default, so the caller
can retry or drop the item knowingly.

Documents are material, never instructions: a model may quote a document that
holds our own markers (`**QUESTION:**`, `Final judgment: REWORD`, `**User:**`)
or a bold FAQ line (`**Question 2**:`). The parsers read only the model's own
structure: markers inside fenced code blocks and quoted (`>`) lines are not
markers, a judgment counts only where it opens a line, and where the model used
the canonical `**QUESTION:**` / `**ANSWER:**` markers, looser look-alikes inside
its answers are text.
"""

import re

from generation_functions.errors import ParseError

# Markers must open a line so that bold words inside an answer are never
# mistaken for them. Tolerates `**QUESTION:**`, `**Question 2**:`, `### **ANSWER:**`.
_QA_MARKER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?\*\*[ \t]*(QUESTION|ANSWER)(?:[ \t]*#?\d+)?[ \t]*"
    r"(?::[ \t]*\*\*|\*\*[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
# The markers as the prompts write them (capitals, colon inside the bold; a number is tolerated).
_CANONICAL_QA_MARKER = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*)?\*\*(QUESTION|ANSWER)(?:[ \t]*#?\d+)?:\*\*", re.MULTILINE)
_TURN_MARKER = re.compile(
    r"^[ \t]*\*\*[ \t]*(User|AI[ \t]+Assistant)[ \t]*(?::[ \t]*\*\*|\*\*[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
# Whole words only: IRRELEVANT contains RELEVANT, INACCURATE contains ACCURATE.
# `[\s*]+` lets bold sit between NOT and the word (`NOT **RELEVANT**`).
_RELEVANCE_VERDICT = re.compile(r"\b(not[\s*]+|ir)?relevant\b", re.IGNORECASE)
_ACCURACY_VERDICT = re.compile(r"\b(not[\s*]+|in)?accurate\b", re.IGNORECASE)
# A judgment opens its line (after headings, bullets or bold); one quoted inside a sentence is not one.
_FINAL_JUDGMENT = re.compile(
    r"^[ \t#*\-]*final[ \t]+judge?ment[\s*:\-]*(pass|fail|reword)\b", re.IGNORECASE | re.MULTILINE
)
_REWORDING_HEADING = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?\**[ \t]*question[ \t]+rewording[ \t]*\**[ \t]*:?[ \t]*\**[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SUITABILITY_VERDICT = re.compile(r"\b(UN)?SUITABLE\b(?:[ \t*]*[:\-][ \t*]*([^\n]*))?")
# The kinds of unsuitable chunk the filter prompt names, for the run report.
UNSUITABLE_KINDS = (
    "table of contents",
    "links or navigation",
    "boilerplate",
    "data without explanation",
    "too little content",
)
# The kinds of question the question generation prompt asks for, written as "[kind] question".
QUESTION_KINDS = ("fact", "how-to", "why", "comparison", "troubleshooting", "scenario")
_KIND_TAG = re.compile(r"^\[[ \t]*([A-Za-z][A-Za-z \t/_-]{0,30}?)[ \t]*\][ \t]*")
# An explicit answer of question generation that the chunk holds nothing to ask about.
_NO_QUESTIONS = re.compile(r"^[ \t*#]*NO QUESTIONS\b", re.MULTILINE)
_NONE_VALUES = frozenset({"none", "none."})
_SPEAKERS = {"user": "User", "ai assistant": "AI Assistant"}


def _normalize(text: str | None) -> str:
    """Unify newlines so `^`/`$` anchors behave the same for Windows output."""
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def preview(text: str | None, limit: int = 60) -> str:
    """A short one-line quote of model text, so a message shows what came back."""
    flat = " ".join((text or "").split())
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))


_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_QUOTED_LINE = re.compile(r"^[ \t]*>.*$", re.MULTILINE)


def _mask_quoted(text: str) -> str:
    """text with fenced code and quoted lines blanked out (same length, newlines kept),
    so markers are searched only in the model's own words while bodies keep everything."""

    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    return _QUOTED_LINE.sub(blank, _FENCE.sub(blank, text))


def _segments(pattern: re.Pattern[str], text: str) -> list[tuple[str, str]]:
    """Split text into (marker name, stripped body) pieces; preamble is ignored.
    Markers are looked for outside code fences and quotes only."""
    matches = list(pattern.finditer(_mask_quoted(text)))
    bodies = []
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(text)
        bodies.append((match.group(1), text[match.end():end].strip()))
    return bodies


def _is_blank(value: str) -> bool:
    """Empty strings and the literal "None" mean the model had nothing to say."""
    return not value or value.casefold() in _NONE_VALUES


def _pair_blocks(text: str) -> list[tuple[str, str]]:
    """Pair each QUESTION with the ANSWER right after it; orphans are dropped.

    When the model wrote the prompts' own markers (`**QUESTION:**`, `**QUESTION 2:**`),
    only those count: a bold FAQ line such as `**Question 2**:` inside an answer is text."""
    canonical = _CANONICAL_QA_MARKER.search(_mask_quoted(text)) is not None
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for marker, body in _segments(_CANONICAL_QA_MARKER if canonical else _QA_MARKER, text):
        if marker.upper() == "QUESTION":
            question = body
        elif question is not None:
            if not (_is_blank(question) or _is_blank(body)):
                pairs.append((question, body))
            question = None
    return pairs


def parse_question_generation(text: str) -> list[tuple[str, str]]:
    """All usable (question, answer) pairs, in the order the model wrote them.

    A "[kind]" label before a question is taken off (parse_question_kinds reads it).
    An explicit `NO QUESTIONS` (and no pair) is a result, the empty list: the
    model judged that the chunk holds nothing to ask about."""
    return [(question, answer) for _, question, answer in _labelled_pairs(text)]


def parse_question_kinds(text: str) -> list[str | None]:
    """The kind of each pair parse_question_generation returns, in the same order:
    one of QUESTION_KINDS, "other" for a label outside them, None where there is none."""
    return [kind for kind, _, _ in _labelled_pairs(text)]


def _labelled_pairs(text: str) -> list[tuple[str | None, str, str]]:
    normalized = _normalize(text)
    pairs = _pair_blocks(normalized)
    if not pairs and _NO_QUESTIONS.search(_mask_quoted(normalized)):
        return []
    if not pairs:
        raise ParseError(f"no QUESTION/ANSWER pair in model output {preview(text)}")
    labelled = []
    for question, answer in pairs:
        kind, question = split_kind(question)
        if question:
            labelled.append((kind, question, answer))
    if not labelled:
        raise ParseError(f"no QUESTION/ANSWER pair in model output {preview(text)}")
    return labelled


def whole_pairs_of_cut_output(text: str) -> str:
    """Of a question generation output cut off at max_tokens, the part that holds whole pairs:
    everything before its last QUESTION marker, where the pair being written when it was cut starts."""
    normalized = _normalize(text)
    masked = _mask_quoted(normalized)
    marker = _CANONICAL_QA_MARKER if _CANONICAL_QA_MARKER.search(masked) else _QA_MARKER
    questions = [match.start() for match in marker.finditer(masked) if match.group(1).upper() == "QUESTION"]
    return normalized[: questions[-1]] if questions else ""


def split_kind(question: str) -> tuple[str | None, str]:
    """("how-to", "How do I ...?") from "[how-to] How do I ...?"; (None, question) without a label."""
    match = _KIND_TAG.match(question)
    if match is None:
        return None, question
    label = " ".join(match.group(1).lower().replace("_", "-").split())
    label = {"how to": "how-to", "howto": "how-to", "facts": "fact", "reasoning": "why"}.get(label, label)
    return (label if label in QUESTION_KINDS else "other"), question[match.end():].strip()


def format_question_answer_list(pairs: list[tuple[str, str]]) -> str:
    """Render pairs exactly as the conversation prompt expects them.

    Uses the same markers parse_question_generation reads, so the two round-trip.
    """
    blocks = (f"**QUESTION:**\n{q}\n\n**ANSWER:**\n{a}\n\n\n" for q, a in pairs)
    return "".join(blocks).rstrip()


def _last_verdict(pattern: re.Pattern[str], text: str, what: str) -> bool:
    """True for the positive word, False for a negated one.

    The verdict is the last one written in capitals (the prompts ask for the
    verdict word in capitals; reasoning uses lower case on the way), or else one
    on the last line. A lower-case "relevant" in the middle of reasoning that was
    cut off is not a verdict: guessing there would let unchecked pairs through.
    """
    normalized = _mask_quoted(_normalize(text))
    shouted = [m for m in pattern.finditer(normalized) if _is_capitals(m.group(0)[len(m.group(1) or ""):])]
    if shouted:
        return shouted[-1].group(1) is None
    lines = [line for line in normalized.splitlines() if line.strip()]
    last_line = [m for m in pattern.finditer(lines[-1])] if lines else []
    if last_line:
        return last_line[-1].group(1) is None
    raise ParseError(f"no {what} verdict in model output {preview(text)}")


def _is_capitals(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def parse_question_check(text: str) -> bool:
    """True when the final verdict is RELEVANT (not IRRELEVANT / NOT RELEVANT)."""
    return _last_verdict(_RELEVANCE_VERDICT, text, "RELEVANT/IRRELEVANT")


def parse_answer_check(text: str) -> bool:
    """True when the final verdict is ACCURATE (not INACCURATE / NOT ACCURATE)."""
    return _last_verdict(_ACCURACY_VERDICT, text, "ACCURATE/INACCURATE")


def _rewording(text: str, judgment_end: int) -> tuple[str, str]:
    """The reworded pair: after the last rewording heading if there is one,
    else anywhere after the judgment (never the pair quoted in the reasoning)."""
    headings = list(_REWORDING_HEADING.finditer(_mask_quoted(text)))
    start = headings[-1].end() if headings else judgment_end
    pairs = _pair_blocks(text[start:])
    if not pairs:
        raise ParseError(f"REWORD judgment without a parsable rewording {preview(text)}")
    return pairs[0]


def parse_context_repair(text: str) -> tuple[str, tuple[str, str] | None]:
    """("pass" | "fail", None) or ("reword", (question, answer)) from the last
    "Final judgment" line of the output."""
    normalized = _normalize(text)
    judgments = list(_FINAL_JUDGMENT.finditer(_mask_quoted(normalized)))
    if not judgments:
        raise ParseError(f"no final judgment in model output {preview(text)}")
    last = judgments[-1]
    verdict = last.group(1).lower()
    if verdict == "reword":
        return verdict, _rewording(normalized, last.end())
    return verdict, None


def parse_conversation(text: str) -> list[tuple[str, str]]:
    """(speaker, message) turns with speakers "User" / "AI Assistant".

    Same-speaker runs are kept as they are; merging them is the caller's call.
    """
    turns = [
        (_SPEAKERS[" ".join(name.lower().split())], body)
        for name, body in _segments(_TURN_MARKER, _normalize(text))
        if body
    ]
    speakers = {speaker for speaker, _ in turns}
    if speakers != set(_SPEAKERS.values()):
        raise ParseError(
            f"conversation needs a User turn and an AI Assistant turn {preview(text)}"
        )
    return turns


def parse_chunk_filter(text: str) -> tuple[bool, str]:
    """(True, "") when the last verdict is SUITABLE; (False, kind) for UNSUITABLE: kind.

    The verdict is the last one in capitals outside quotes. The kind is matched
    to the prompt's list where it can be, else kept as written (or "unsuitable")."""
    verdicts = list(_SUITABILITY_VERDICT.finditer(_mask_quoted(_normalize(text))))
    if not verdicts:
        raise ParseError(f"no SUITABLE/UNSUITABLE verdict in model output {preview(text)}")
    last = verdicts[-1]
    if last.group(1) is None:
        return True, ""
    return False, _unsuitable_kind(last.group(2) or "")


def _unsuitable_kind(written: str) -> str:
    flat = " ".join(written.lower().strip(" .*").split())
    for kind in UNSUITABLE_KINDS:
        if flat and (kind in flat or flat in kind.split(" or ")):
            return kind
    return flat[:60] or "unsuitable"


# The grades of the evaluation judge (judge_answer), best first.
JUDGE_GRADES = ("correct", "partly correct", "wrong", "declined")
_GRADE = re.compile(r"\b(PARTLY[ \t]+CORRECT|CORRECT|WRONG|DECLINED)\b")
_REASON_LINE = re.compile(r"^[ \t*]*reason[ \t*]*:[ \t*]*(\S[^\n]*)$", re.IGNORECASE | re.MULTILINE)


def parse_judgment(text: str) -> tuple[str, str]:
    """(grade, one-line reason) from a judge's output: the last grade in capitals outside
    quotes, and the last "Reason:" line ("" when there is none)."""
    normalized = _normalize(text)
    masked = _mask_quoted(normalized)
    grades = list(_GRADE.finditer(masked))
    if not grades:
        raise ParseError(f"no CORRECT/PARTLY CORRECT/WRONG/DECLINED grade in judge output {preview(text)}")
    grade = " ".join(grades[-1].group(1).lower().split())
    reasons = list(_REASON_LINE.finditer(masked))
    reason = normalized[reasons[-1].start(1):reasons[-1].end(1)].strip(" *") if reasons else ""
    return grade, reason


# An answer that says the assistant cannot give the detail (the negative prompt set's kind B),
# in the ways models write it. Matched on the answer's opening, where such answers say so.
_UNKNOWN_ANSWER = re.compile(
    r"\b(?:I\s+(?:do\s*n[o']t|don't|cannot|can't|can\s*not)\s+(?:have\s+(?:any\s+)?(?:reliable\s+)?information|know|say|state|tell|find)"
    r"|(?:is|are)\s*n[o']?t\s+(?:mentioned|covered|stated|specified|given|documented)"
    r"|(?:does|do)\s*n[o']?t\s+(?:say|mention|cover|state|specify|give|document)"
    r"|no\s+(?:reliable\s+)?information\s+(?:about|on)"
    r"|won't\s+guess|will\s+not\s+guess)",
    re.IGNORECASE,
)


def is_unknown_answer(answer: str) -> bool:
    """True for an answer whose point is that the detail is not known or not given
    ("I don't have reliable information about ...", "the documentation does not say ...")."""
    opening = " ".join(answer.split())[:240]
    return _UNKNOWN_ANSWER.search(opening) is not None
