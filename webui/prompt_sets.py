"""The prompt sets a run can use: folders that hold prompt files."""

from __future__ import annotations

from pathlib import Path

PROMPT_SUFFIXES = (".yaml", ".txt")


def list_prompt_sets(app_dir: Path) -> list[Path]:
    """Folders that hold prompt files: prompts/, prompts_*/ and prompt_overrides/*/."""
    candidates = [app_dir / "prompts", *sorted(app_dir.glob("prompts_*")), *sorted(app_dir.glob("prompt_overrides/*"))]
    return [folder for folder in candidates if folder.is_dir() and _holds_prompt_files(folder)]


def _holds_prompt_files(folder: Path) -> bool:
    return any(path.suffix in PROMPT_SUFFIXES and path.is_file() for path in folder.iterdir())


def prompt_set_setting(folder: Path, config_path: Path) -> str:
    """How PATH.PROMPTS names a folder: relative to the config file when inside its folder."""
    base = config_path.resolve().parent
    folder = folder.resolve()
    if folder.is_relative_to(base):
        return "./" + folder.relative_to(base).as_posix()
    return str(folder)


def prompt_set_choices(app_dir: Path, config_path: Path, current: str = "") -> list[tuple[str, str]]:
    """(label, PATH.PROMPTS value) for each prompt set, labelled relative to the app.
    A current value that is none of them (a folder of the user's own) is offered too."""
    choices = [
        (folder.relative_to(app_dir).as_posix(), prompt_set_setting(folder, config_path))
        for folder in list_prompt_sets(app_dir)
    ]
    if current and current not in {value for _, value in choices}:
        choices.append((current, current))
    return choices
