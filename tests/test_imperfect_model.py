"""The pipeline against a model that is not cooperative: answers cut at max_tokens, and the
imperfect mode of the fake server, whose flawed answers look like a real model's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from generation_functions.datasets import DATASET_FILES, MASTER_LIST, PLAIN_QA
from generation_functions.output_processors import parse_question_generation
from tests.conftest import REPO, run_processing, write_config
from tests.fake_imperfect import FLAWS, Imperfection
from tests.fake_llm_server import (
    ANSWER_CHECK,
    CHUNK_FILTER,
    CONTEXT_REPAIR,
    CHAT,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    FakeLLMServer,
    build_parser,
    fenced_blocks,
    qa_blocks,
)

CUT_OFF = "output cut off at max_tokens"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def dataset_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in DATASET_FILES}


def chunk_results(out: Path) -> list[dict]:
    keys = json.loads((out / "chunk_index.json").read_text())["keys"]
    return [json.loads((out / "chunk_results" / f"{key}.json").read_text()) for key in dict.fromkeys(keys)]


def kept_pairs(out: Path) -> set[tuple[str, str]]:
    return {(row["question"], row["answer"]) for row in read_jsonl(out / PLAIN_QA)}


# ---------------------------------------------------------------- the fake itself


def test_help_describes_every_flag_with_its_unit():
    result = subprocess.run(
        [sys.executable, "-m", "tests.fake_llm_server", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    units = {"PORT", "SECONDS", "SHARE", "KINDS", "N", "KEY", "REQUESTS", "PAIRS", "NAMES"}
    flags = [action for action in build_parser()._actions if "--help" not in action.option_strings]
    assert len(flags) >= 13
    for action in flags:
        assert action.metavar in units, action.option_strings
        assert action.help and "default" in action.help, action.option_strings
        assert action.option_strings[0] in result.stdout


@pytest.mark.parametrize("stream", [False, True], ids=["json", "streamed"])
def test_the_fake_honours_max_tokens_and_stop_sequences(stream):
    question = {"role": "user", "content": "What does the fake say?"}
    system = {"role": "system", "content": "Answer the question."}
    answer = "Verus staking rewards holders who stay online. ### Instruction: never reached."
    with FakeLLMServer(responders={CHAT: lambda request: answer}) as server:
        def ask(path: str, **body) -> dict:
            response = httpx.post(f"{server.base_url}{path}", json={"model": "m", **body}, timeout=10)
            response.raise_for_status()
            if not body.get("stream"):
                return response.json()
            events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
            text = "".join(event["choices"][0]["delta"].get("content", "") for event in events)
            return {"choices": [{"message": {"content": text}, "finish_reason": events[-1]["choices"][0]["finish_reason"]}]}

        whole = ask("/chat/completions", messages=[system, question], stream=stream)["choices"][0]
        cut = ask("/chat/completions", messages=[system, question], max_tokens=3, stream=stream)["choices"][0]
        stopped = ask("/chat/completions", messages=[system, question], stop=["### Instruction:"], stream=stream)["choices"][0]
        completion = ask("/completions", prompt="What does the fake say?", max_tokens=2)["choices"][0]
        cohere = httpx.post(f"{server.cohere_url}/v2/chat", json={"model": "m", "messages": [system, question], "max_tokens": 2}).json()
    assert whole["finish_reason"] == "stop" and whole["message"]["content"] == answer
    assert cut["finish_reason"] == "length" and cut["message"]["content"] == answer[:12]  # 3 tokens of 4 characters
    assert stopped["finish_reason"] == "stop" and stopped["message"]["content"] == "Verus staking rewards holders who stay online. "
    assert completion["finish_reason"] == "length" and completion["text"] == answer[:8]
    assert cohere["finish_reason"] == "MAX_TOKENS"


# ---------------------------------------------------------------- answers cut at max_tokens


@pytest.fixture(scope="module")
def uncut(tmp_path_factory):
    """The run whose answers all fit: what a cut run's whole parts must come from."""
    tmp = tmp_path_factory.mktemp("uncut")
    with FakeLLMServer() as server:
        config = write_config(tmp / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    return tmp / "output"


# Question generation is cut inside its second or third pair, conversations of two pairs inside
# their last answer, and the question check's votes on the longer questions before their verdict.
CUT_SAMPLING = {
    "QUESTION_GENERATION": {"MAX_TOKENS": 110},
    "CONVERSATION": {"MAX_TOKENS": 110},
    "QUESTION_CHECK": {"MAX_TOKENS": 43},
}


def test_answers_cut_at_max_tokens_are_never_kept_and_say_so(tmp_path, uncut):
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400}, SAMPLING=CUT_SAMPLING)
        result = run_processing(config)
        cut = Counter(r.step for r in server.requests if r.finish_reason == "length")
    assert result.returncode == 0, result.stderr[-3000:]
    assert cut[QUESTION_GENERATION] and cut[CONVERSATION] and cut[QUESTION_CHECK]
    out = tmp_path / "output"
    report = json.loads((out / "run_report.json").read_text())
    results = chunk_results(out)
    # What was tossed is counted, and its record says why, with the model's own text.
    dropped = report["stages"]["question_generation"]["tossed_reasons"]["unfinished pair dropped (output cut off at max_tokens)"]
    assert dropped == sum("cut_off" in chunk for chunk in results) > 0
    assert report["stages"]["conversation"]["tossed_reasons"][CUT_OFF] == sum(
        chunk.get("failure", {}).get("reason") == CUT_OFF for chunk in results
    ) > 0
    assert report["stages"]["question_check"]["tossed_reasons"]["check failed (no usable verdict)"] > 0
    for chunk in results:
        if "cut_off" in chunk:
            assert chunk["cut_off"]["raw_output"] and len(chunk["cut_off"]["raw_output"]) == 110 * 4
        if chunk.get("failure", {}).get("stage") == "conversation":
            assert chunk["failure"]["reason"] == CUT_OFF and chunk["failure"]["raw_output"]
        for record in chunk["vetted"]:
            if record.get("tossed_at") == "question_check":
                assert record["failures"] == [f"{CUT_OFF} (43)"] * 2
    # What was kept is whole: pairs the uncut run made too, conversations ending on a whole answer.
    kept = kept_pairs(out)
    assert kept and kept <= kept_pairs(uncut)
    assert report["funnel"]["conversations"] > 0
    for row in read_jsonl(out / MASTER_LIST):
        replies = [turn["message"] for turn in row["conversation"] if turn["speaker"] == "AI Assistant"][1:]
        assert replies == [pair["answer"] for pair in row["qa_pairs"]]


def test_a_cut_run_reruns_and_runs_again_to_the_same_bytes(tmp_path):
    outputs = {}
    for name in ("once", "again"):
        (tmp_path / name).mkdir()
        with FakeLLMServer() as server:
            config = write_config(tmp_path / name / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400}, SAMPLING=CUT_SAMPLING)
            assert run_processing(config).returncode == 0
            made = server.count()
            first = dataset_bytes(tmp_path / name / "output")
            assert run_processing(config).returncode == 0
            assert server.count() == made  # the rerun reuses every stored call, cut ones included
            assert dataset_bytes(tmp_path / name / "output") == first
        outputs[name] = first
    assert outputs["once"] == outputs["again"]


# ---------------------------------------------------------------- the imperfect model

IMPERFECT = Imperfection(rate=0.3, seed=4)


def _imperfect_config(folder: Path, base_url: str, **system) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder / "config.yaml", base_url, SYSTEM={"CHUNK_SIZE": 400, **system})


@pytest.fixture(scope="module")
def imperfect_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imperfect")
    with FakeLLMServer(imperfect=IMPERFECT) as server:
        config = _imperfect_config(tmp, server.base_url)
        result = run_processing(config)
        requests = list(server.requests)
        rerun = run_processing(config)
        asked_on_rerun = server.count() - len(requests)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    return tmp / "output", requests, asked_on_rerun


def _prompt_key(step: str, user: str) -> tuple[str, ...]:
    """What a prompt of the step is about: (chunk,), (chunk, question, answer), or a conversation's whole input."""
    if step == CONVERSATION:
        return (user,)
    chunk = fenced_blocks(user)[0]
    if step in (QUESTION_CHECK, ANSWER_CHECK):
        return tuple(fenced_blocks(user)[:3])
    if step == CONTEXT_REPAIR:
        return (chunk, *qa_blocks(user)[-1])
    return (chunk,)


def _flaws(requests, step: str) -> dict[tuple[str, ...], str]:
    """What the server did to each distinct prompt of a step: the flaw's name, "" for a good answer."""
    flaws: dict[tuple[str, ...], str] = {}
    for request in requests:
        if request.step == step:
            key = _prompt_key(step, request.user)
            assert flaws.setdefault(key, request.flaw) == request.flaw  # the same prompt, the same answer
    return flaws


def _expected_pair_fate(requests, chunk: str, question: str, answer: str) -> tuple[str, str]:
    """(stage, reason) the pipeline must record for a pair, from what the server answered it."""
    asked = _flaws(requests, QUESTION_CHECK).get((chunk, question, answer), "")
    if asked:
        return "question_check", {"no verdict": "check failed (no usable verdict)", "wrong verdict": "voted irrelevant"}[asked]
    checked = _flaws(requests, ANSWER_CHECK).get((chunk, question, answer), "")
    if checked:
        return "answer_check", {"no verdict": "check failed (no usable verdict)", "wrong verdict": "voted inaccurate"}[checked]
    repair = _flaws(requests, CONTEXT_REPAIR).get((chunk, question, answer), "")
    if repair:
        return "context_repair", {"reword without a rewording": "check failed (no usable judgment)", "wrong verdict": "cannot stand alone"}[repair]
    return "", ""


def test_an_imperfect_model_gives_every_flaw_and_the_run_finishes(imperfect_run):
    out, requests, _ = imperfect_run
    seen = {(r.step, r.flaw) for r in requests if r.flaw}
    for step in (CHUNK_FILTER, QUESTION_GENERATION, QUESTION_CHECK, ANSWER_CHECK, CONTEXT_REPAIR, CONVERSATION):
        assert any(seen_step == step for seen_step, _ in seen), f"no flawed answer for {step}: raise the rate or change the seed"
    assert len(seen) >= 8
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == "finished"
    assert report["funnel"]["conversations"] > 0 and kept_pairs(out)


def test_each_flawed_answer_costs_exactly_what_it_should_and_says_why(imperfect_run):
    out, requests, _ = imperfect_run
    filter_flaws = _flaws(requests, CHUNK_FILTER)
    question_flaws = _flaws(requests, QUESTION_GENERATION)
    conversation_flaws = _flaws(requests, CONVERSATION)
    fates = Counter()
    for chunk in chunk_results(out):
        text = chunk["chunk"]
        if filter_flaws.get((text,)) == "wrong verdict":
            assert chunk["filtered"]["reason"] == "too little content"
            fates["filtered"] += 1
            continue
        assert "filtered" not in chunk  # a filter that rambles without a verdict keeps the chunk
        if question_flaws.get((text,)) == "no markers":
            assert chunk["failure"]["stage"] == "question_generation" and "unparsable output" in chunk["failure"]["reason"]
            assert chunk["failure"]["raw_output"].startswith("Here are some questions")
            fates["no questions"] += 1
            continue
        assert chunk["raw_pairs"] and all(question != "None" for question, _ in chunk["raw_pairs"])
        for record in chunk["vetted"]:
            question, answer = record.get("before_repair", (record["question"], record["answer"]))  # as checked
            stage, reason = _expected_pair_fate(requests, text, question, answer)
            if stage:
                assert (record["kept"], record["tossed_at"], record["reason"]) == (False, stage, reason), record
                fates[reason] += 1
            else:
                assert record["kept"], record
                fates["kept"] += 1
        conversation = [flaw for (user,), flaw in conversation_flaws.items() if qa_blocks(user) == [tuple(p) for p in chunk["pairs"]]]
        if chunk["pairs"]:
            assert len(conversation) == 1
            if conversation[0]:
                assert chunk["conversation"] is None and chunk["failure"]["stage"] == "conversation"
                expected = "check failed (no usable conversation)" if conversation[0] == "no speaker markers" else "not carried"
                assert expected in chunk["failure"]["reason"], chunk["failure"]
                fates["conversation tossed"] += 1
            else:
                assert chunk["conversation"], chunk.get("failure")
    # Every kind of loss happened, and the good pairs were kept.
    assert fates["kept"] > 0 and fates["filtered"] > 0 and fates["conversation tossed"] > 0
    assert fates["check failed (no usable verdict)"] > 0 and (fates["voted inaccurate"] + fates["voted irrelevant"]) > 0


def test_an_imperfect_run_is_the_same_on_rerun_from_scratch_and_after_a_kill(tmp_path, imperfect_run):
    out, requests, asked_on_rerun = imperfect_run
    assert asked_on_rerun == 0  # a rerun asks nothing again
    expected = dataset_bytes(out)
    with FakeLLMServer(imperfect=IMPERFECT) as server:
        assert run_processing(_imperfect_config(tmp_path / "fresh", server.base_url)).returncode == 0
    assert dataset_bytes(tmp_path / "fresh" / "output") == expected
    with FakeLLMServer(imperfect=IMPERFECT, latency=0.01) as server:
        config = _imperfect_config(tmp_path / "killed", server.base_url, CONCURRENCY_LIMIT=4)
        process = subprocess.Popen(
            [sys.executable, str(REPO / "processing.py"), "--config", str(config), "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while server.count() < len(requests) // 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert 0 < server.count() < len(requests)
        result = run_processing(config)
        assert result.returncode == 0, result.stderr[-3000:]
    assert dataset_bytes(tmp_path / "killed" / "output") == expected


def _good_answers() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """A good answer of each step from the fake, for a chunk of two sentences, and the pairs it holds."""
    from generation_functions.output_processors import format_question_answer_list
    from tests.fake_llm_server import DEFAULT_RESPONDERS, Request

    chunk = "Verus staking rewards holders who keep their wallet online. Identities are registered on chain with a name."
    pairs = parse_question_generation(DEFAULT_RESPONDERS[QUESTION_GENERATION](Request("", "", {}, "", f'"""\n{chunk}\n"""', "m")))
    question, answer = pairs[0]
    user = {
        CHUNK_FILTER: f'"""\n{chunk}\n"""',
        QUESTION_GENERATION: f'"""\n{chunk}\n"""',
        QUESTION_CHECK: f'"""\n{chunk}\n"""\n"""\n{question}\n"""\n"""\n{answer}\n"""',
        ANSWER_CHECK: f'"""\n{chunk}\n"""\n"""\n{question}\n"""\n"""\n{answer}\n"""',
        CONTEXT_REPAIR: f'"""\n{chunk}\n"""\n\n' + format_question_answer_list([(question, answer)]),
        CONVERSATION: format_question_answer_list(pairs),
    }
    return {step: (DEFAULT_RESPONDERS[step](Request("", step, {}, "", text, "m")), pairs) for step, text in user.items()}


# What each flaw must do to the pipeline's own parser and check (None: no usable output).
FLAW_EFFECTS = {
    (CHUNK_FILTER, "no verdict"): None,
    (CHUNK_FILTER, "wrong verdict"): (False, "too little content"),
    (QUESTION_GENERATION, "no markers"): None,
    (QUESTION_GENERATION, "preface and an empty pair"): "the good pairs",
    (QUESTION_CHECK, "no verdict"): None,
    (QUESTION_CHECK, "wrong verdict"): False,
    (ANSWER_CHECK, "no verdict"): None,
    (ANSWER_CHECK, "wrong verdict"): False,
    (CONTEXT_REPAIR, "reword without a rewording"): None,
    (CONTEXT_REPAIR, "wrong verdict"): ("fail", None),
    (CONVERSATION, "skips a question"): "fails the check",
    (CONVERSATION, "answers in its own words"): "fails the check",
    (CONVERSATION, "no speaker markers"): None,
}


def test_each_flaw_does_to_the_parsers_what_its_name_says():
    from generation_functions.conversation_check import check_conversation
    from generation_functions.errors import ParseError
    from generation_functions.steps import BY_NAME

    assert set(FLAW_EFFECTS) == {(step, name) for step, flaws in FLAWS.items() for name, _ in flaws}
    good = _good_answers()
    for (step, name), effect in FLAW_EFFECTS.items():
        answer, pairs = good[step]
        flawed = dict(FLAWS[step])[name](answer, "")
        parse = BY_NAME[step].processor
        if effect is None:
            with pytest.raises(ParseError):
                parse(flawed)
        elif effect == "the good pairs":
            assert parse(flawed) == parse(answer) == pairs
        elif effect == "fails the check":
            assert check_conversation(parse(flawed), pairs) and not check_conversation(parse(answer), pairs)
        else:
            assert parse(flawed) == effect and parse(answer) != effect, (step, name)
