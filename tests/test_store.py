"""The call store: one append-only log per step, read back after a kill."""

from __future__ import annotations

import json

import orjson

from generation_functions.store import CALL_LOG, CallStore, count_calls, work_key, write_json_if_changed


def record(response: str = "RELEVANT") -> dict:
    return {"model": "m", "values": {"text": "t"}, "response": response}


def test_a_saved_call_is_found_by_a_later_run(tmp_path):
    first = CallStore(tmp_path)
    key = work_key("question_check", "t", 0)
    first.save("question_check", key, record())
    first.close()

    second = CallStore(tmp_path)
    assert second.load("question_check", key)["response"] == "RELEVANT"
    assert second.load("question_check", work_key("other")) is None
    assert second.hits == 1
    lines = (tmp_path / "calls" / "question_check" / CALL_LOG).read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [key]


def test_a_call_is_readable_in_the_same_run_that_saved_it(tmp_path):
    store = CallStore(tmp_path)
    keys = [work_key(i) for i in range(5)]
    for i, key in enumerate(keys):
        store.save("answer_check", key, record(f"answer {i}"))
    assert [store.load("answer_check", key)["response"] for key in keys] == [f"answer {i}" for i in range(5)]
    store.close()


def test_a_torn_last_line_is_missing_and_cut_off_before_the_next_append(tmp_path):
    store = CallStore(tmp_path)
    whole, torn = work_key("whole"), work_key("torn")
    store.save("conversation", whole, record("kept"))
    store.close()
    log = tmp_path / "calls" / "conversation" / CALL_LOG
    line = orjson.dumps({"key": torn, **record("lost")})
    with open(log, "ab") as handle:
        handle.write(line[: len(line) // 2])  # what a kill in the middle of a write leaves

    resumed = CallStore(tmp_path)
    assert resumed.load("conversation", torn) is None
    assert resumed.load("conversation", whole)["response"] == "kept"
    resumed.save("conversation", torn, record("asked again"))
    resumed.close()

    lines = log.read_bytes().splitlines()
    assert [orjson.loads(line)["response"] for line in lines] == ["kept", "asked again"]
    assert CallStore(tmp_path).load("conversation", torn)["response"] == "asked again"


def test_a_damaged_line_counts_as_missing_not_as_done(tmp_path):
    folder = tmp_path / "calls" / "context_repair"
    folder.mkdir(parents=True)
    good, bad, no_response = work_key("good"), work_key("bad"), work_key("no response")
    (folder / CALL_LOG).write_bytes(
        orjson.dumps({"key": good, **record()}) + b"\n"
        + b'{"key": "' + bad.encode() + b'", "respo\xff\n'
        + orjson.dumps({"key": no_response, "response": None}) + b"\n"
    )
    store = CallStore(tmp_path)
    assert store.load("context_repair", good) is not None
    assert store.load("context_repair", bad) is None
    assert store.load("context_repair", no_response) is None
    assert store.log("context_repair").unreadable == 2


def test_per_call_files_of_earlier_versions_are_still_reused(tmp_path):
    folder = tmp_path / "calls" / "question_generation"
    folder.mkdir(parents=True)
    key = work_key("old")
    (folder / f"{key}.json").write_text(json.dumps({"key": key, **record("from an old run")}))
    store = CallStore(tmp_path)
    assert store.load("question_generation", key)["response"] == "from an old run"
    store.save("question_generation", work_key("new"), record())
    store.close()
    assert count_calls(folder) == 2


def test_counting_calls_changes_nothing(tmp_path):
    store = CallStore(tmp_path)
    store.save("question_check", work_key(1), record())
    store.close()
    log = tmp_path / "calls" / "question_check" / CALL_LOG
    with open(log, "ab") as handle:
        handle.write(b'{"key": "half')
    before = log.read_bytes()
    assert count_calls(log.parent) == 1
    assert log.read_bytes() == before
    assert count_calls(tmp_path / "calls" / "never_ran") == 0
    assert not (tmp_path / "calls" / "never_ran").exists()


def test_an_unchanged_result_is_not_rewritten(tmp_path):
    path = tmp_path / "chunk_results" / "abc.json"
    assert write_json_if_changed(path, {"pairs": [["q", "a"]]})
    inode = path.stat().st_ino
    assert not write_json_if_changed(path, {"pairs": [["q", "a"]]})
    assert path.stat().st_ino == inode
    assert write_json_if_changed(path, {"pairs": [["q", "a"]], "conversation": None})
    assert json.loads(path.read_text()) == {"pairs": [["q", "a"]], "conversation": None}
