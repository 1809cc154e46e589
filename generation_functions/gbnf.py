"""A small pure-Python reader of llama.cpp GBNF grammars.

Each pipeline step's output protocol is sent to the model server as a GBNF
grammar (llama.cpp's `grammar`, vLLM's structured-outputs grammar, SGLang's
`ebnf`). CI has no llama.cpp, yet we still want to know that the grammars we
send are ones llama.cpp would load, that the fake server can honour a
constrained request, and that every few-shot example of a prompt set is in its
step's grammar. So this module:

* `parse(text)` reads GBNF the way llama.cpp's grammar parser does (same
  tokens, same rule that a newline ends a rule except after `::=`, after `|`
  and inside parentheses, same left-recursion refusal) and raises
  `GrammarError` with line and column for what it refuses;
* `Grammar.matches(text)` says whether the whole text is in the language;
* `Grammar.example()` gives a short text the grammar accepts.

Limits. Matching compiles the grammar to one Python `re` pattern by inlining
rules, so it refuses recursive grammars (llama.cpp allows right recursion) and
can backtrack badly on nested unbounded repetitions whose items overlap (the
simplest such nestings are flattened). It is deliberately stricter than
llama.cpp where llama.cpp silently does something surprising: a rule defined
twice (llama.cpp keeps the last), `{m,n}` with m > n (llama.cpp exhausts
memory), an empty or reversed character class (llama.cpp lets `[]` match
nothing at all, i.e. the empty text) and token references `<...>` (which need
a tokenizer).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Optional, Union

__all__ = [
    "GrammarError", "Grammar", "parse",
    "Lit", "Cls", "AnyChar", "Ref", "Group", "Seq", "Alt", "Repeat",
]

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-")
_HEX_DIGITS = frozenset(string.hexdigits)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_RECURSION = "rule {} refers to itself; this checker handles grammars without recursion"


class GrammarError(ValueError):
    """A grammar llama.cpp would refuse (or this checker cannot handle)."""

    def __init__(self, message: str, line: Optional[int] = None, column: Optional[int] = None):
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(where + message)
        self.message, self.line, self.column = message, line, column


# --- the parsed form ---------------------------------------------------------

@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    ranges: tuple[tuple[int, int], ...]   # inclusive code point ranges
    negated: bool

    def allows(self, char: str) -> bool:
        inside = any(lo <= ord(char) <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class AnyChar:
    pass


@dataclass(frozen=True)
class Ref:
    name: str
    offset: int   # where the reference is written, for error messages


@dataclass(frozen=True)
class Group:
    alt: "Alt"


@dataclass(frozen=True)
class Seq:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Alt:
    options: tuple[Seq, ...]


@dataclass(frozen=True)
class Repeat:
    item: "Node"
    min: int
    max: Optional[int]   # None: unbounded


Node = Union[Lit, Cls, AnyChar, Ref, Group, Seq, Alt, Repeat]


# --- parsing -----------------------------------------------------------------

def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


class _Parser:
    """A recursive-descent reader that follows llama.cpp's grammar-parser.cpp step by step."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0
        self.rules: dict[str, Alt] = {}
        self.rule_offsets: dict[str, int] = {}
        self.refs: list[Ref] = []

    def error(self, message: str, offset: Optional[int] = None) -> GrammarError:
        return GrammarError(message, *_line_col(self.text, self.pos if offset is None else offset))

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.text[i] if i < len(self.text) else ""

    def space(self, newline_ok: bool) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == "#":   # a comment runs to the end of the line, newline excluded
                while self.pos < len(text) and text[self.pos] not in "\r\n":
                    self.pos += 1
            elif c in " \t" or (newline_ok and c in "\r\n"):
                self.pos += 1
            else:
                break

    def name(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start:self.pos]

    def grammar(self) -> None:
        self.space(newline_ok=True)
        while self.pos < len(self.text):
            self.rule()

    def rule(self) -> None:
        start = self.pos
        name = self.name()
        if not name:
            raise self.error(f"expecting a rule name, found {self.peek()!r} (a rule goes on to the next"
                             " line only after '::=', after '|' or inside parentheses)")
        if name in self.rules:
            line, _ = _line_col(self.text, self.rule_offsets[name])
            raise self.error(f"rule {name!r} is defined twice (first on line {line})", start)
        self.space(newline_ok=False)
        if not self.text.startswith("::=", self.pos):
            raise self.error(f"expecting '::=' after rule name {name!r}")
        self.pos += 3
        self.space(newline_ok=True)
        self.rule_offsets[name] = start
        self.rules[name] = self.alternates(nested=False)
        self.end_of_rule()

    def end_of_rule(self) -> None:
        c = self.peek()
        if c and c in "\r\n":
            self.pos += 2 if self.text.startswith("\r\n", self.pos) else 1
            self.space(newline_ok=True)
        elif c == "_":
            raise self.error("unexpected '_': rule names may use only letters, digits and '-'")
        elif c:
            raise self.error(f"unexpected {c!r}: expecting newline or end of grammar")

    def alternates(self, nested: bool) -> Alt:
        options = [self.sequence(nested)]
        while self.peek() == "|":
            self.pos += 1
            self.space(newline_ok=True)   # llama.cpp lets an alternative start on the next line
            options.append(self.sequence(nested))
        return Alt(tuple(options))

    def sequence(self, nested: bool) -> Seq:
        items: list[Node] = []
        while True:
            c = self.peek()
            if c == '"':
                items.append(self.literal())
            elif c == "[":
                items.append(self.char_class())
            elif c and c in _NAME_CHARS:
                offset = self.pos
                ref = Ref(self.name(), offset)
                self.refs.append(ref)
                items.append(ref)
            elif c == "(":
                items.append(self.group())
            elif c == ".":
                self.pos += 1
                items.append(AnyChar())
            elif c == "<":
                raise self.error("token references (<...>) are not supported by this checker")
            elif c and c in "*+?{":
                items.append(self.repetition(items, nested))
            else:
                return Seq(tuple(items))
            self.space(nested)

    def char(self) -> str:
        """One character of a literal or class, escapes resolved."""
        c = self.peek()
        if c != "\\":
            self.pos += 1
            return c
        esc = self.peek(1)
        if esc in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[esc]
        if esc not in _HEX_ESCAPES:
            raise self.error(f"unknown escape '\\{esc}'")
        width = _HEX_ESCAPES[esc]
        digits = self.text[self.pos + 2:self.pos + 2 + width]
        if len(digits) != width or not set(digits) <= _HEX_DIGITS:
            raise self.error(f"'\\{esc}' needs {width} hex digits")
        code = int(digits, 16)
        if code > 0x10FFFF:
            raise self.error(f"'\\{esc}{digits}' is beyond the last Unicode code point")
        self.pos += 2 + width
        return chr(code)

    def literal(self) -> Lit:
        start = self.pos
        self.pos += 1
        chars = []
        while self.peek() != '"':
            if not self.peek():
                raise self.error("unterminated string literal", start)
            chars.append(self.char())
        self.pos += 1
        return Lit("".join(chars))

    def char_class(self) -> Cls:
        start = self.pos
        self.pos += 1
        negated = self.peek() == "^"
        self.pos += negated
        ranges = []
        while self.peek() != "]":
            if not self.peek():
                raise self.error("unterminated character class", start)
            range_start = self.pos
            lo = hi = self.char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):   # a '-' before ']' is itself
                self.pos += 1
                hi = self.char()
                if hi < lo:
                    raise self.error(f"reversed character range {lo!r}-{hi!r}", range_start)
            ranges.append((ord(lo), ord(hi)))
        if not ranges:
            raise self.error("empty character class (llama.cpp would let it match the empty text)", start)
        self.pos += 1
        return Cls(tuple(ranges), negated)

    def group(self) -> Group:
        start = self.pos
        self.pos += 1
        self.space(newline_ok=True)
        alt = self.alternates(nested=True)
        if not self.peek():
            line, col = _line_col(self.text, start)
            raise self.error(f"unterminated group: '(' at line {line}, column {col} is never closed")
        if self.peek() != ")":
            raise self.error(f"expecting ')' but found {self.peek()!r}")
        self.pos += 1
        return Group(alt)

    def repetition(self, items: list[Node], nested: bool) -> Repeat:
        start, op = self.pos, self.peek()
        self.pos += 1
        self.space(nested)
        low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}.get(op) or self.braces(nested)
        # llama.cpp repeats the elements of the last item; "" , [] or x{0} left none
        if not items or _leaves_nothing(items[-1]):
            raise self.error(f"nothing to repeat before '{op}'", start)
        if high is not None and low > high:
            raise self.error(f"bad repetition {{{low},{high}}}: minimum exceeds maximum", start)
        return Repeat(items.pop(), low, high)

    def integer(self, after: str) -> int:
        start = self.pos
        while _is_digit(self.peek()):
            self.pos += 1
        if start == self.pos:
            raise self.error(f"bad repetition: expecting a number after {after!r}")
        return int(self.text[start:self.pos])

    def braces(self, nested: bool) -> tuple[int, Optional[int]]:
        low = self.integer("{")
        self.space(nested)
        if self.peek() == "}":
            high: Optional[int] = low
        elif self.peek() == ",":
            self.pos += 1
            self.space(nested)
            high = self.integer(",") if _is_digit(self.peek()) else None
            self.space(nested)
            if self.peek() != "}":
                raise self.error(f"bad repetition: expecting '}}' but found {self.peek()!r}")
        else:
            raise self.error(f"bad repetition: expecting ',' or '}}' but found {self.peek()!r}")
        self.pos += 1
        return low, high


def _is_digit(c: str) -> bool:
    return c != "" and c in string.digits


def _leaves_nothing(node: Node) -> bool:
    """Whether llama.cpp's parser emits no element for this item (then `*` has nothing to apply to)."""
    return (isinstance(node, Lit) and not node.text) or (isinstance(node, Repeat) and node.max == 0)


# --- llama.cpp's left-recursion refusal ----------------------------------------

class _Lowered:
    """The grammar as llama.cpp stores it: rules of alternatives of symbols, a symbol being
    'c' (a terminal) or a rule key. Only needed to refuse left recursion exactly as it does,
    including its quirk that "may be empty" means an alternative with no symbols at all."""

    def __init__(self, rules: dict[str, Alt]):
        self.rules: dict[object, list[list[object]]] = {}
        self.owner: dict[object, str] = {}
        for name, alt in rules.items():
            self.add(name, name, alt)

    def add(self, key: object, owner: str, alt: Alt) -> None:
        self.owner[key] = owner
        self.rules[key] = [self.symbols(seq, owner) for seq in alt.options]

    def symbols(self, node: Node, owner: str) -> list[object]:
        if isinstance(node, Seq):
            return [s for item in node.items for s in self.symbols(item, owner)]
        if isinstance(node, Lit):
            return ["c"] * len(node.text)
        if isinstance(node, (Cls, AnyChar)):
            return ["c"]
        if isinstance(node, Ref):
            return [node.name]
        if isinstance(node, Group):
            key = object()
            self.add(key, owner, node.alt)
            return [key]
        assert isinstance(node, Repeat)
        return self.repeat(node, owner)

    def repeat(self, node: Repeat, owner: str) -> list[object]:
        # mirrors handle_repetitions(): min copies, then a chain of optional rules
        prev = self.symbols(node.item, owner)
        out = prev * node.min
        last: object = None
        for i in range(1 if node.max is None else node.max - node.min):
            key = object()
            self.owner[key] = owner
            tail = [key] if node.max is None else ([last] if i > 0 else [])
            self.rules[key] = [prev + tail, []]
            last = key
        return out + ([last] if last is not None else [])

    def left_recursive(self) -> Optional[str]:
        visited: set = set()
        for key in self.rules:
            if key not in visited:
                found = self.visit(key, visited, set(), set())
                if found is not None:
                    return self.owner[found]
        return None

    def visit(self, key: object, visited: set, in_progress: set, may_be_empty: set) -> Optional[object]:
        if key in in_progress:
            return key
        in_progress.add(key)
        if any(not alt for alt in self.rules[key]):
            may_be_empty.add(key)
        for alt in self.rules[key]:
            for sym in alt:
                if sym == "c":
                    break
                found = self.visit(sym, visited, in_progress, may_be_empty)
                if found is not None:
                    return found
                if sym not in may_be_empty:
                    break
        in_progress.discard(key)
        visited.add(key)
        return None


# --- matching and examples -------------------------------------------------------

def _class_rx(node: Cls) -> str:
    body = "".join(f"\\U{lo:08x}" + (f"-\\U{hi:08x}" if hi != lo else "") for lo, hi in node.ranges)
    return f"[{'^' if node.negated else ''}{body}]"


class _Regex:
    """Inlines every rule into one pattern; raises for recursion, which `re` cannot express."""

    def __init__(self, rules: dict[str, Alt]):
        self.rules = rules
        self.done: dict[str, str] = {}
        self.active: list[str] = []

    def rule(self, name: str) -> str:
        if name in self.active:
            raise GrammarError(_RECURSION.format(name))
        if name not in self.done:
            self.active.append(name)
            self.done[name] = self.node(self.rules[name])
            self.active.pop()
        return self.done[name]

    def node(self, node: Node) -> str:
        if isinstance(node, Lit):
            return re.escape(node.text)
        if isinstance(node, Cls):
            return _class_rx(node)
        if isinstance(node, AnyChar):
            return "."
        if isinstance(node, Ref):
            return f"(?:{self.rule(node.name)})"
        if isinstance(node, Group):
            return f"(?:{self.node(node.alt)})"
        if isinstance(node, Seq):
            return "".join(self.node(item) for item in node.items)
        if isinstance(node, Alt):
            return "|".join(self.node(seq) for seq in node.options)
        return self.repeat(_flatten(node, self.rules))

    def repeat(self, node: Repeat) -> str:
        inner = self.node(node.item)
        single = isinstance(node.item, (Cls, AnyChar)) or (isinstance(node.item, Lit) and len(node.item.text) == 1)
        atom = inner if single else f"(?:{inner})"
        return f"{atom}{{{node.min},{'' if node.max is None else node.max}}}"


def _unwrap(node: Node, rules: dict[str, Alt]) -> Node:
    """The single item behind groups and rules of one item, e.g. `("a"*)` -> `"a"*`."""
    while True:
        alt = node.alt if isinstance(node, Group) else rules.get(node.name) if isinstance(node, Ref) else None
        if alt is None or len(alt.options) != 1 or len(alt.options[0].items) != 1:
            return node
        node = alt.options[0].items[0]


def _flatten(node: Repeat, rules: dict[str, Alt]) -> Repeat:
    """Turns (x{a,}){m,n} and (x?){m,n} into one repetition of x, so `re` does not try
    every way of splitting a run of x between the two loops (exponential on failure)."""
    inner = _unwrap(node.item, rules)
    if not isinstance(inner, Repeat) or node.max == 0:
        return node
    a, b = inner.min, inner.max
    if b is None and node.min >= 1:
        return _flatten(Repeat(inner.item, a * node.min, None), rules)
    if b is None and a <= 1:
        return _flatten(Repeat(inner.item, 0, None), rules)
    if (a, b) == (0, 1):
        return _flatten(Repeat(inner.item, 0, node.max), rules)
    return node


_FALLBACK_CHARS = string.ascii_letters + string.digits + string.punctuation + " "


def _class_example(node: Cls) -> str:
    if not node.negated:
        return chr(node.ranges[0][0])
    for char in _FALLBACK_CHARS:   # a readable character where the class allows one
        if node.allows(char):
            return char
    for code in range(0xA0, 0x110000):
        if not 0xD800 <= code <= 0xDFFF and node.allows(chr(code)):
            return chr(code)
    raise GrammarError("a negated character class excludes every character")


def _terminates(node: Node, known: frozenset) -> bool:
    """Whether the node yields a finite text using only the rules in `known` (minimum repeats)."""
    if isinstance(node, Ref):
        return node.name in known
    if isinstance(node, Group):
        return _terminates(node.alt, known)
    if isinstance(node, Seq):
        return all(_terminates(item, known) for item in node.items)
    if isinstance(node, Alt):
        return any(_terminates(seq, known) for seq in node.options)
    if isinstance(node, Repeat):
        return node.min == 0 or _terminates(node.item, known)
    return True


# --- the grammar ------------------------------------------------------------------

class Grammar:
    """A parsed GBNF grammar: `rules` maps each rule name to its parsed alternatives."""

    def __init__(self, text: str, rules: dict[str, Alt]):
        self.text = text
        self.rules = rules
        self._pattern: Optional[re.Pattern[str]] = None
        self._levels: Optional[dict[str, frozenset]] = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Grammar({len(self.rules)} rules)"

    def pattern(self) -> re.Pattern[str]:
        """The whole grammar as one compiled `re` pattern (GrammarError if recursive)."""
        if self._pattern is None:
            source = _Regex(self.rules).rule("root")
            try:
                self._pattern = re.compile(source, re.DOTALL)
            except (re.error, OverflowError, RecursionError) as exc:
                raise GrammarError(f"grammar too large for this checker: {exc}") from exc
        return self._pattern

    def matches(self, text: str) -> bool:
        """Whether the whole text is in the grammar's language (code point by code point)."""
        return self.pattern().fullmatch(text) is not None

    def example(self) -> str:
        """A short text the grammar accepts, always the same: minimum repetitions, and at each
        choice the first alternative that terminates without going deeper than needed."""
        if self._levels is None:
            self._levels = self._termination_levels()
        out: list[str] = []
        self._write(self.rules["root"], self._levels["root"], out)
        return "".join(out)

    def _termination_levels(self) -> dict[str, frozenset]:
        """For each rule, the rules it may use so that expanding it surely ends: those that were
        found to terminate in an earlier round than itself (which also handles recursion)."""
        levels: dict[str, frozenset] = {}
        known: frozenset = frozenset()
        while True:
            new = {name for name, alt in self.rules.items() if name not in known and _terminates(alt, known)}
            if not new:
                break
            levels.update(dict.fromkeys(new, known))
            known = known | new
        if "root" not in levels:
            raise GrammarError(f"no finite text is in this grammar; never-ending rules: {sorted(set(self.rules) - known)}")
        return levels

    def _write(self, node: Node, known: frozenset, out: list[str]) -> None:
        if isinstance(node, Lit):
            out.append(node.text)
        elif isinstance(node, Cls):
            out.append(_class_example(node))
        elif isinstance(node, AnyChar):
            out.append("a")
        elif isinstance(node, Ref):
            self._write(self.rules[node.name], self._levels[node.name], out)
        elif isinstance(node, Group):
            self._write(node.alt, known, out)
        elif isinstance(node, Seq):
            for item in node.items:
                self._write(item, known, out)
        elif isinstance(node, Alt):
            self._write(next(seq for seq in node.options if _terminates(seq, known)), known, out)
        else:
            for _ in range(node.min):
                self._write(node.item, known, out)


def parse(text: str) -> Grammar:
    """Reads a GBNF grammar as llama.cpp does; GrammarError (with line and column) if it would refuse it."""
    parser = _Parser(text)
    parser.grammar()
    for ref in parser.refs:
        if ref.name not in parser.rules:
            raise parser.error(f"undefined rule {ref.name!r}", ref.offset)
    if "root" not in parser.rules:
        raise GrammarError("no 'root' rule: the grammar must define root ::= ...", 1, 1)
    culprit = _Lowered(parser.rules).left_recursive()
    if culprit is not None:
        raise parser.error(f"rule {culprit!r} is left-recursive, which llama.cpp refuses",
                           parser.rule_offsets[culprit])
    return Grammar(text, parser.rules)
