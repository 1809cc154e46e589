"""gbnf.py reads GBNF as llama.cpp does, matches texts, and gives examples its grammars accept."""

from __future__ import annotations

import time

import pytest

from generation_functions.gbnf import Alt, Grammar, GrammarError, parse

# (id, grammar, texts it accepts, texts it rejects)
VALID = [
    ("literal", 'root ::= "abc"', ["abc"], ["", "ab", "abcd", "ABC"]),
    ("escapes", r'root ::= "\n\t\r\\\"\[\]"', ['\n\t\r\\"[]'], ["\\n\\t"]),
    ("hex-escapes", r'root ::= "\x41\u00e9\U0001F600"', ["Aé😀"], ["A\\u00e9"]),
    ("unicode-literal", 'root ::= "héllo ✓"', ["héllo ✓"], ["hello ✓"]),
    ("empty-literal", 'root ::= "" "a"', ["a"], [""]),
    ("class-range", "root ::= [a-z0-9]", ["a", "q", "7"], ["A", "", "ab", "-"]),
    ("class-negated", r"root ::= [^\n]", ["x", " ", "é"], ["\n", ""]),
    ("class-negated-letters", "root ::= [^a-zA-Z]", ["0", "!"], ["a", "Z"]),
    ("class-escapes", r"root ::= [\]\[\\\x41-\x43]", ["]", "[", "\\", "B"], ["D", "x"]),
    ("class-dash-edges", "root ::= [-a] [b-]", ["-b", "a-"], ["bb", "--x"]),
    ("class-non-ascii", "root ::= [à-ü]", ["é"], ["a", "ÿ"]),
    ("any", "root ::= . .", ["ab", "\n\n", "é😀"], ["a", "abc"]),
    ("star", 'root ::= "ab"*', ["", "ab", "ababab"], ["a", "aba"]),
    ("plus", "root ::= [0-9]+", ["0", "123"], ["", "1a"]),
    ("optional", 'root ::= "a" "b"?', ["a", "ab"], ["b", "abb"]),
    ("exactly", 'root ::= "x"{3}', ["xxx"], ["xx", "xxxx"]),
    ("at-least", 'root ::= "x"{2,}', ["xx", "xxxxx"], ["x"]),
    ("between", 'root ::= "x"{1,3}', ["x", "xxx"], ["", "xxxx"]),
    ("between-zero", 'root ::= "x"{0,2} "y"', ["y", "xxy"], ["xxxy"]),
    ("zero", 'root ::= "x"{0} "y"', ["y"], ["xy"]),
    ("spaced-braces", 'root ::= "x"{ 1 , 2 }', ["x", "xx"], ["xxx"]),
    ("stacked", 'root ::= "a"{2}{3}', ["a" * 6], ["a" * 2, "a" * 3]),
    ("group-repeat", 'root ::= ("ab" | "c"){2,3}', ["abc", "ccc", "abab"], ["ab", "cccc"]),
    ("alternation", 'root ::= "yes" | "no" | "maybe"', ["yes", "no", "maybe"], ["", "yesno"]),
    ("empty-alternative", 'root ::= "a" | | "b"', ["a", "", "b"], ["ab"]),
    ("empty-group", 'root ::= "a" () "b"', ["ab"], ["a"]),
    ("nested-groups", 'root ::= ("a" ("b" | "c")?)+', ["a", "abac", "aa"], ["b", "abc"]),
    ("nested-stars", 'root ::= ("a"*)*', ["", "aaa"], ["b"]),
    ("rules", 'root ::= greeting " " name\ngreeting ::= "hi" | "hello"\nname ::= [A-Z] [a-z]*',
     ["hi Bo", "hello X"], ["hi bo", "hey Bo"]),
    ("dashed-and-digit-names", 'root ::= my-rule 2nd\nmy-rule ::= "a"\n2nd ::= "b"', ["ab"], ["a"]),
    ("multi-line-rule",
     'root ::=\n  "a" |\n  "b" |\n  "c" (\n    "d"\n    | "e"\n  )\n',
     ["a", "b", "cd", "ce"], ["c", "cde"]),
    ("comments",
     '# a heading\nroot ::= item # trailing\n  # between rules\nitem ::= "x" # done',
     ["x"], ["#", ""]),
    ("crlf", 'root ::= a\r\na ::= "a" |\r\n "b"\r\n', ["a", "b"], ["\r"]),
    ("no-space-around-assign", 'root::="a"', ["a"], [""]),
    ("protocol-like",
     'root ::= "Answer: " line{1,3} "END"\nline ::= [^\\n]{0,40} "\\n"',
     ["Answer: yes\nEND", "Answer: \n\n\nEND"], ["Answer: END", "Answer: x\n\n\n\nEND"]),
]

# (id, grammar, fragment of the message, line)
INVALID = [
    ("empty-text", "", "no 'root' rule", 1),
    ("only-comment", "# nothing", "no 'root' rule", 1),
    ("no-root", 'start ::= "a"', "no 'root' rule", 1),
    ("undefined", 'root ::= "a" |\n  thing', "undefined rule 'thing'", 2),
    ("undefined-in-unused-rule", 'root ::= "a"\nx ::= y', "undefined rule 'y'", 2),
    ("defined-twice", 'root ::= x\nx ::= "a"\nx ::= "b"', "rule 'x' is defined twice (first on line 2)", 3),
    ("unterminated-literal", 'root ::= "a\n', "unterminated string literal", 1),
    ("unterminated-class", "root ::= \"a\"\nx ::= [abc", "unterminated character class", 2),
    ("unterminated-group", 'root ::= ("a" | "b"', "unterminated group", 1),
    ("wrong-group-close", 'root ::= ("a"]', "expecting ')'", 1),
    ("stray-close", 'root ::= "a")', "unexpected ')'", 1),
    ("stray-char", 'root ::= "a" @', "unexpected '@'", 1),
    ("underscore-name", 'root ::= my_rule\nmy_rule ::= "a"', "rule names may use only letters", 1),
    ("no-assign", 'root "a"', "expecting '::='", 1),
    ("two-rules-one-line", 'root ::= "a" x ::= "b"', "unexpected ':'", 1),
    ("continuation-without-bar", 'root ::= "a"\n  "b"', "expecting a rule name", 2),
    ("bar-on-next-line", 'root ::= "a"\n| "b"', "expecting a rule name", 2),
    ("repeat-on-next-line", 'root ::= "a"\n*', "expecting a rule name", 2),
    ("unknown-escape", r'root ::= "\q"', "unknown escape", 1),
    ("short-hex", r'root ::= "\x4"', "needs 2 hex digits", 1),
    ("bad-unicode-hex", r'root ::= [\u12G4]', "needs 4 hex digits", 1),
    ("nothing-to-repeat", 'root ::= *"a"', "nothing to repeat", 1),
    ("repeat-empty-literal", 'root ::= "a" ""+', "nothing to repeat", 1),
    ("repeat-zero-times", 'root ::= "a"{0}*', "nothing to repeat", 1),
    ("min-over-max", 'root ::= "a"{3,1}', "minimum exceeds maximum", 1),
    ("no-min", 'root ::= "a"{,3}', "expecting a number", 1),
    ("not-a-number", 'root ::= "a"{x}', "expecting a number", 1),
    ("unclosed-brace", 'root ::= "a"{1,2', "expecting '}'", 1),
    ("brace-over-newline", 'root ::= "a"{1,\n2}', "expecting '}'", 1),
    ("empty-class", 'root ::= "a" []', "empty character class", 1),
    ("empty-negated-class", "root ::= [^]", "empty character class", 1),
    ("reversed-range", "root ::= [z-a]", "reversed character range", 1),
    ("token", "root ::= <[1000]>", "token references", 1),
    ("left-recursion", 'root ::= x\nx ::= root "a" | "b"', "left-recursive", 1),
    ("star-of-star", 'root ::= "a"**', "left-recursive", 1),
    ("star-of-optional-group", 'root ::= ("a" | "")*', "left-recursive", 1),
    ("star-of-bounded-from-zero", 'x ::= "b"\nroot ::= x{0,3}*', "left-recursive", 2),
]

# Where this reader is deliberately stricter than llama.cpp (which loads these).
LLAMA_DIFFERS = {
    "empty-text": "llama.cpp treats an empty grammar string as no grammar at all",
    "defined-twice": "llama.cpp silently keeps the last definition",
    "min-over-max": "llama.cpp does not check m <= n and exhausts memory, so it is not run",
    "empty-class": "llama.cpp lets [] match the empty text",
    "empty-negated-class": "llama.cpp lets [^] match the empty text",
    "reversed-range": "llama.cpp loads a range that matches nothing",
    "token": "llama.cpp resolves <...> against a model's vocabulary",
}


def _ids(table):
    return [row[0] for row in table]


@pytest.mark.parametrize("name, text, accepted, rejected", VALID, ids=_ids(VALID))
def test_valid_grammars_accept_and_reject(name, text, accepted, rejected):
    grammar = parse(text)
    for sample in accepted:
        assert grammar.matches(sample), f"{name} should accept {sample!r}"
    for sample in rejected:
        assert not grammar.matches(sample), f"{name} should reject {sample!r}"


@pytest.mark.parametrize("name, text, accepted, rejected", VALID, ids=_ids(VALID))
def test_example_is_accepted(name, text, accepted, rejected):
    grammar = parse(text)
    example = grammar.example()
    assert grammar.matches(example)
    assert grammar.example() == example   # deterministic


@pytest.mark.parametrize("name, text, fragment, line", INVALID, ids=_ids(INVALID))
def test_invalid_grammars_name_the_problem_and_line(name, text, fragment, line):
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert fragment in str(caught.value)
    assert caught.value.line == line
    assert f"line {line}, column {caught.value.column}:" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_columns_point_at_the_problem():
    with pytest.raises(GrammarError) as caught:
        parse('root ::= "a"\nx ::= "b" @')
    assert (caught.value.line, caught.value.column) == (2, 11)


def test_rules_text_and_str():
    text = 'root ::= item+\nitem ::= "a" | [0-9]'
    grammar = parse(text)
    assert set(grammar.rules) == {"root", "item"}
    assert isinstance(grammar.rules["item"], Alt) and len(grammar.rules["item"].options) == 2
    assert str(grammar) == grammar.text == text
    assert isinstance(grammar, Grammar)


def test_example_picks_minimum_and_readable_characters():
    assert parse('root ::= "a"{2,5} [^a-c] [x-z] .?').example() == "aadx"
    assert parse("root ::= [^\\n]{3}").example() == "aaa"


def test_recursive_grammar_parses_but_matching_refuses_it():
    grammar = parse('root ::= "(" root ")" | "x"')
    assert grammar.example() == "x"   # example() copes with recursion
    with pytest.raises(GrammarError, match="rule root refers to itself; this checker handles grammars without"):
        grammar.matches("(x)")


def test_example_of_a_never_ending_grammar_is_refused():
    with pytest.raises(GrammarError, match="no finite text"):
        parse('root ::= "a" root').example()


@pytest.mark.parametrize("text, sample", [
    (r'root ::= ([^\n]{0,400} "\n"){0,24}', ("y" * 399 + "\n") * 24 + "tail"),
    ('root ::= line*\nline ::= [^\\n]* "\\n"', ("y" * 99 + "\n") * 100 + "no newline"),
    ('root ::= ("a"*)* "b"', "a" * 10_000),
    ('root ::= ("a"+)+ "b"', "a" * 10_000),
    ('root ::= ("a"?)+ "b"', "a" * 10_000),
], ids=["bounded-lines", "unbounded-lines", "star-of-star", "plus-of-plus", "plus-of-optional"])
def test_ten_kilobytes_that_fail_at_the_end_fail_fast(text, sample):
    grammar = parse(text)
    assert len(sample) >= 9_000
    start = time.perf_counter()
    assert not grammar.matches(sample)
    assert time.perf_counter() - start < 1.0
    assert grammar.matches(sample[: sample.rfind("\n") + 1] if "\n" in sample else sample + "b")


def _llama_loads(text: str) -> bool:
    """Whether llama.cpp's own parser loads the grammar. llama-cpp-python's
    LlamaGrammar.from_string parses only in older releases (newer ones just keep the
    string), so the grammar sampler is built too: it returns NULL for a bad grammar,
    and needs no model for that."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama_cpp is not installed")
    try:
        llama_cpp.LlamaGrammar.from_string(text, verbose=False)
    except Exception:
        return False
    init = getattr(llama_cpp, "llama_sampler_init_grammar", None)
    if init is None:
        return True
    sampler = init(None, text.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def test_llama_cpp_agrees_on_every_grammar_of_the_tables():
    pytest.importorskip("llama_cpp", reason="llama_cpp is not installed, so there is nothing to compare with")
    disagreements = []
    for name, text, *_ in VALID:
        if not _llama_loads(text):
            disagreements.append(f"{name}: llama.cpp refuses a grammar parse() accepts")
    for name, text, *_ in INVALID:
        if name not in LLAMA_DIFFERS and _llama_loads(text):
            disagreements.append(f"{name}: llama.cpp loads a grammar parse() refuses")
    assert not disagreements, "\n".join(disagreements)
