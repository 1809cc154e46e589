"""Shared helpers of the WebUI tests: a config in a temp folder and the form's values for it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import write_config
from webui.settings_form import setting_fields, settings_from_values, values_from_settings

FIELDS = setting_fields()
BY_NAME = {f.name: f for f in FIELDS}
DOCUMENT = "# VerusID\n\n" + " ".join(
    f"VerusID number {i} is a self-sovereign identity that can hold funds and sign messages on the Verus network."
    for i in range(12)
)
# The fake server votes a question IRRELEVANT when it carries this marker.
TOSSED_DOCUMENT = "# Baskets\n\n[irrelevant] Basket currencies hold reserves of several other currencies at once in Verus.\n"


def settings_data(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1", **sections) -> tuple[dict, Path]:
    """A config dict (and the config path it belongs to) with folders in tmp_path."""
    config_path = write_config(tmp_path / "config.yaml", base_url, PATH={"INPUT": "input", "OUTPUT": "output"}, **sections)
    (tmp_path / "input").mkdir(exist_ok=True)
    return yaml.safe_load(config_path.read_text()), config_path


def widget_values(data: dict) -> list:
    return values_from_settings(data, FIELDS)


def with_value(data: dict, name: str, value) -> dict:
    """The settings after a person types `value` into the field `name` (the stored secret kept)."""
    values = widget_values(data)
    values[[f.name for f in FIELDS].index(name)] = value
    return settings_from_values(values, FIELDS, stored=data)
