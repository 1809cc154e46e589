"""Uploads, prompt sets and download staging of the WebUI (webui/uploads.py, prompt_sets.py, downloads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.odd_trees import BAD_NAME_SHOWN, DEEP_FILE, SKIPPED_REASONS, build_odd_tree, remove_tree
from webui import downloads, prompt_sets, uploads


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.md", "notes.md"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        (".bashrc", "bashrc"),
        ("..", "upload"),
        ("", "upload"),
        ("a b?*<>|.md", "a b_.md"),
        ("na\x00me.txt", "na_me.txt"),
        ("Vérus whitepaper.pdf", "Vérus whitepaper.pdf"),
        ("-rf.md", "rf.md"),
    ],
)
def test_file_names_are_sanitised(name, expected):
    assert uploads.sanitize_filename(name) == expected


def test_long_names_are_cut_but_keep_their_extension():
    name = uploads.sanitize_filename("é" * 300 + ".md")
    assert name.endswith(".md") and len(name.encode("utf-8")) <= uploads.MAX_NAME_BYTES


def _upload(tmp_path: Path, name: str, content: str) -> Path:
    folder = tmp_path / "uploads" / str(len(list((tmp_path / "uploads").glob("*"))) if (tmp_path / "uploads").exists() else 0)
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def test_uploads_land_inside_the_input_folder_under_clean_names(tmp_path):
    input_dir = tmp_path / "input" / "nested"  # created on first upload
    stored = uploads.store_uploads([_upload(tmp_path, ".hidden notes.md", "a"), _upload(tmp_path, "doc;rm -rf.txt", "b")], input_dir)
    assert [s.path.name for s in stored] == ["hidden notes.md", "doc_rm -rf.txt"]
    assert all(s.path.parent == input_dir.resolve() and s.fate == "added" for s in stored)
    assert uploads.list_input_files(input_dir) == ["doc_rm -rf.txt", "hidden notes.md"]


def test_an_upload_never_replaces_or_writes_through_an_existing_file(tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    outside = tmp_path / "outside.md"
    outside.write_text("keep me", encoding="utf-8")
    (input_dir / "doc.md").symlink_to(outside)
    (input_dir / "other.md").write_text("original", encoding="utf-8")
    stored = uploads.store_uploads([_upload(tmp_path, "doc.md", "new"), _upload(tmp_path, "other.md", "changed")], input_dir)
    assert [(s.path.name, s.fate) for s in stored] == [("doc-1.md", "renamed"), ("other-1.md", "renamed")]
    assert outside.read_text() == "keep me" and (input_dir / "other.md").read_text() == "original"
    message = uploads.upload_message(stored, input_dir)
    assert "`doc.md` as `doc-1.md`" in message and "Added 2" not in message


def test_an_identical_reupload_says_it_was_already_there(tmp_path):
    input_dir = tmp_path / "input"
    first = uploads.store_uploads([_upload(tmp_path, "doc.md", "same")], input_dir)
    second = uploads.store_uploads([_upload(tmp_path, "doc.md", "same")], input_dir)
    assert first[0].path == second[0].path and uploads.list_input_files(input_dir) == ["doc.md"]
    assert uploads.upload_message(first, input_dir).startswith("Added 1 file(s)")
    message = uploads.upload_message(second, input_dir)
    assert "Added" not in message and "Already there with the same content, nothing added: `doc.md`" in message


def test_input_listing_says_when_the_folder_is_missing_or_empty(tmp_path):
    assert "does not exist yet" in uploads.input_files_markdown(tmp_path / "nope")
    assert "is empty" in uploads.input_files_markdown(tmp_path)



def test_input_listing_survives_odd_trees_and_says_what_is_not_read(tmp_path):
    input_dir = tmp_path / "input"
    build_odd_tree(input_dir, tmp_path / "outside.txt")
    try:
        files = uploads.list_input_files(input_dir)
        markdown = uploads.input_files_markdown(input_dir)
    finally:
        remove_tree(input_dir)
    assert files == [BAD_NAME_SHOWN, DEEP_FILE, "inside_link.md", "plain.md"]
    markdown.encode("utf-8")  # shown in a browser: valid text only
    assert "**4 file(s) in" in markdown and "**Not read:**" in markdown
    for name, reason in SKIPPED_REASONS.items():
        assert f"- `{name}`: {reason}" in markdown

# ---------------------------------------------------------------- prompt sets


def test_prompt_sets_are_folders_that_hold_prompt_files(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "check_answer.yaml").write_text("[]")
    (tmp_path / "prompts_vision_paper").mkdir()
    (tmp_path / "prompts_vision_paper" / "x.txt").write_text("x")
    (tmp_path / "prompt_overrides" / "api_reference").mkdir(parents=True)
    (tmp_path / "prompt_overrides" / "api_reference" / "check_question.yaml").write_text("[]")
    (tmp_path / "prompt_overrides" / "empty").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in prompt_sets.list_prompt_sets(tmp_path)]
    assert found == ["prompts", "prompts_vision_paper", "prompt_overrides/api_reference"]


def test_the_repository_prompt_sets_and_the_current_folder_are_offered_in_one_control():
    choices = prompt_sets.prompt_set_choices(REPO, REPO / "config.yaml")
    labels = [label for label, _ in choices]
    assert labels[:1] == ["prompts"] and "prompts_vision_paper" in labels and choices[0][1] == "./prompts"
    mine = prompt_sets.prompt_set_choices(REPO, REPO / "config.yaml", current="/data/my_prompts")
    assert mine[-1] == ("/data/my_prompts", "/data/my_prompts") and len(mine) == len(choices) + 1


def test_a_prompt_set_outside_the_config_folder_is_named_absolutely(tmp_path):
    assert prompt_sets.prompt_set_setting(REPO / "prompts", tmp_path / "config.yaml") == str((REPO / "prompts").resolve())


# ---------------------------------------------------------------- download staging


def _outputs(tmp_path: Path) -> list[Path]:
    output = tmp_path / "output"
    output.mkdir()
    for name in ("simplified_data_no_rag.jsonl", "run_report.json"):
        (output / name).write_text(f"{name}\n", encoding="utf-8")
    return downloads.output_files(output)


def test_staging_the_same_files_many_times_never_fails_and_serves_their_content(tmp_path):
    """Reloading the Results tab once restaged hard links over themselves, which left a
    temporary behind and made every later reload fail ("... are the same file")."""
    files = _outputs(tmp_path)
    stage = downloads.DownloadStage(tmp_path / "served")
    for _ in range(6):
        staged = stage.stage(files)
        assert {name: path.read_bytes() for name, path in staged.items()} == {p.name: p.read_bytes() for p in files}
    assert not list(stage.root.rglob(".*")), "no temporary left behind"
    (tmp_path / "output" / "run_report.json").write_text("rewritten\n")  # a new run replaces the file
    assert stage.stage(files)["run_report.json"].read_text() == "rewritten\n"
    stage.close()
    assert not stage.root.exists()


def test_staging_folders_of_a_killed_app_are_removed_at_the_next_start(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"{downloads.PREFIX}{dead.stdout.strip()}-x"
    orphan.mkdir(parents=True)
    alive = tmp_path / f"{downloads.PREFIX}{os.getppid()}-y"
    alive.mkdir()
    stage = downloads.DownloadStage(tmp_path)
    assert not orphan.exists() and alive.exists()
    stage.close()
