"""Verustoolkit's WebUI: the settings, a run and its results in a browser.

    python app.py                          # http://127.0.0.1:7860, settings from ./config.yaml
    python app.py --config FILE --port N   # another config file or port
    python app.py --host 0.0.0.0           # reachable from other machines (no login: trusted networks only)

The run happens in this process through the same run function as
processing.py. Settings are written to the config file only when you press
"Save settings". What each widget does lives in generation_functions/webui_handlers.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from generation_functions import webui_handlers as ui
from generation_functions.log_setup import project_logging

APP_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = APP_DIR / "config.yaml"
TICK_SECONDS = 0.5


APP_CSS = """
.vt-stage { margin: 0.4em 0; }
.vt-stage-label { font-size: 0.95em; margin-bottom: 0.2em; }
.vt-bar { background: var(--block-border-color, #ddd); border-radius: 4px; height: 12px; overflow: hidden; }
.vt-bar-fill { background: var(--color-accent, #f97316); height: 100%; transition: width 0.3s; }
.vt-funnel { display: flex; flex-direction: column; align-items: center; gap: 6px; padding: 8px 0; }
.vt-funnel-row { width: 100%; display: flex; flex-direction: column; align-items: center; }
.vt-funnel-bar { background: var(--color-accent, #f97316); height: 22px; border-radius: 3px; opacity: 0.85; }
.vt-funnel-text { font-size: 0.9em; margin-top: 2px; }
"""


@dataclass
class AppContext:
    """What every handler of one app needs to know."""

    config_path: Path
    app_dir: Path = APP_DIR
    fields: list[ui.SettingField] = field(default_factory=ui.setting_fields)
    controller: ui.RunController = field(default_factory=ui.RunController)
    downloads_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="verustoolkit-downloads-")))

    def settings(self, values: tuple[Any, ...]) -> dict:
        return ui.settings_from_values(values, self.fields)

    def path_setting(self, values: tuple[Any, ...], key: str) -> Path:
        return ui.resolve_setting_path(self.settings(values)["PATH"][key], self.config_path)


# ---------------------------------------------------------------- widgets


def setting_widget(gr: Any, setting: ui.SettingField, value: Any, info: str) -> Any:
    """The widget that fits a config key. Numbers carry no min/max: gradio would
    reject an out-of-range number with its own message, and the rules and
    messages must be processing.py's (the bounds are shown in the info text)."""
    label = setting.name
    if setting.kind == "bool":
        return gr.Checkbox(value=value, label=label, info=info)
    if setting.kind in ("int", "float"):
        return gr.Number(value=value, label=label, info=info, precision=None, step=1)
    if setting.kind == "choice":
        return gr.Dropdown(choices=list(setting.choices), value=value, label=label, info=info)
    if setting.kind == "secret":
        return gr.Textbox(value=value, label=label, info=info, type="password")
    if setting.kind == "long_text":
        return gr.Textbox(value=value, label=label, info=info, lines=4, max_lines=12)
    if setting.kind == "url_list":
        return gr.Textbox(value=value, label=label, info=info, lines=1, max_lines=6)
    if setting.kind == "string_list":
        return gr.Textbox(value=value, label=label, info=info, lines=4, max_lines=12)
    return gr.Textbox(value=value, label=label, info=info)


def section_widgets(gr: Any, ctx: AppContext, section: str, values: dict[str, Any], help_texts: dict[str, str]) -> dict[str, Any]:
    return {
        setting.name: setting_widget(gr, setting, values[setting.name], ui.widget_info(setting, help_texts))
        for setting in ctx.fields
        if setting.section == section
    }


def read_help_texts(app_dir: Path) -> dict[str, str]:
    try:
        return ui.help_from_readme((app_dir / "README.md").read_text(encoding="utf-8"))
    except OSError:
        return {}


# ---------------------------------------------------------------- the app


def build_app(config_path: Path, app_dir: Path = APP_DIR) -> Any:
    """The gradio Blocks of the WebUI; nothing runs until it is launched."""
    import gradio as gr

    ctx = AppContext(config_path=config_path.resolve(), app_dir=app_dir)
    data, load_problem = ui.read_settings_file(ctx.config_path)
    initial = dict(zip((f.name for f in ctx.fields), ui.values_from_settings(data, ctx.fields)))
    help_texts = read_help_texts(app_dir)
    widgets: dict[str, Any] = {}

    with gr.Blocks(title="Verustoolkit", analytics_enabled=False) as app:
        gr.Markdown(f"# Verustoolkit\nSettings from `{ctx.config_path}`. Nothing is written to it until you save.")
        load_message = gr.Markdown(f"**Problem in the config file:** {load_problem}" if load_problem else "")
        with gr.Tabs():
            with gr.Tab("Documents", id="documents"):
                documents = _documents_tab(gr, ctx, initial, help_texts, widgets)
            with gr.Tab("Settings", id="settings"):
                settings_tab = _settings_tab(gr, ctx, initial, help_texts, widgets)
            with gr.Tab("Run", id="run"):
                run_tab = _run_tab(gr)
            with gr.Tab("Results", id="results"):
                results_tab = _results_tab(gr)
        setting_inputs = [widgets[f.name] for f in ctx.fields]
        _wire_documents(gr, ctx, documents, widgets, setting_inputs)
        _wire_settings(ctx, settings_tab, setting_inputs, load_message)
        _wire_run(gr, app, ctx, run_tab, results_tab, setting_inputs)
        _wire_results(app, ctx, results_tab, setting_inputs)
    return app


def _documents_tab(gr: Any, ctx: AppContext, initial: dict, help_texts: dict, widgets: dict) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    gr.Markdown("Documents are read from the input folder (nested folders too). Upload files into it, or choose another folder.")
    widgets.update(section_widgets(gr, ctx, "PATH", initial, help_texts))
    choices = ui.prompt_set_choices(ctx.app_dir, ctx.config_path)
    current = initial["PATH.PROMPTS"]
    parts["prompt_set"] = gr.Dropdown(
        choices=choices,
        value=current if current in {value for _, value in choices} else None,
        label="Prompt set",
        info="Sets PATH.PROMPTS; any prompt missing there is taken from PATH.DEFAULT_PROMPTS.",
    )
    parts["upload"] = gr.File(label="Upload documents into the input folder", file_count="multiple", type="filepath")
    parts["upload_message"] = gr.Markdown("")
    with gr.Row():
        parts["refresh"] = gr.Button("Refresh the file list", size="sm")
    input_dir = ui.resolve_setting_path(initial["PATH.INPUT"], ctx.config_path)
    parts["listing"] = gr.Markdown(ui.input_files_markdown(input_dir))
    return parts


def _settings_tab(gr: Any, ctx: AppContext, initial: dict, help_texts: dict, widgets: dict) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for section, title in (("API", "Model server"), ("SYSTEM", "Run"), ("SKIP", "Skip steps")):
        with gr.Accordion(f"{section}: {title}", open=True):
            widgets.update(section_widgets(gr, ctx, section, initial, help_texts))
    with gr.Row():
        parts["check"] = gr.Button("Check settings")
        parts["save"] = gr.Button("Save settings to the config file", variant="primary")
    parts["message"] = gr.Markdown("")
    return parts


def _run_tab(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    with gr.Row():
        parts["start"] = gr.Button("Start run", variant="primary", elem_id="start-run")
        parts["cancel"] = gr.Button("Cancel run", variant="stop", elem_id="cancel-run")
    parts["status"] = gr.Markdown("**Idle**: no run yet.", elem_id="run-status")
    parts["progress"] = gr.HTML(ui.progress_html({}), elem_id="run-progress")
    parts["log"] = gr.Textbox(label="Log", lines=10, max_lines=10, interactive=False, autoscroll=True, elem_id="run-log")
    gr.Markdown("### Run report")
    parts["funnel"] = gr.HTML(ui.funnel_html(None), elem_id="run-funnel")
    parts["report"] = gr.Markdown(ui.report_markdown(None), elem_id="run-report")
    parts["timer"] = gr.Timer(TICK_SECONDS, active=False)
    return parts


def _results_tab(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    parts["refresh"] = gr.Button("Refresh results", size="sm")
    parts["summary"] = gr.Markdown("", elem_id="results-summary")
    parts["conversation"] = gr.Dropdown(choices=[], label="Conversation", info="One per chunk that kept pairs.")
    with gr.Row():
        parts["chat"] = gr.Chatbot(label="Conversation", height=420, scale=3, buttons=["copy_all"], feedback_options=None)
        parts["chunk"] = gr.Textbox(label="Source chunk", lines=16, max_lines=16, interactive=False, scale=2)
    parts["pairs"] = gr.Dataframe(headers=ui.PAIR_HEADERS, value=[], label="Its question/answer pairs", wrap=True, interactive=False)
    parts["tossed"] = gr.Dataframe(headers=ui.TOSSED_HEADERS, value=[], label="Tossed pairs", wrap=True, interactive=False)
    parts["failed"] = gr.Dataframe(
        headers=ui.FAILED_CHUNK_HEADERS, value=[], label="Chunks without questions or conversation", wrap=True, interactive=False
    )
    parts["files"] = gr.File(label="Output files (click to download)", file_count="multiple", interactive=False, elem_id="output-files")
    return parts


# ---------------------------------------------------------------- wiring


def _wire_documents(gr: Any, ctx: AppContext, parts: dict, widgets: dict, setting_inputs: list) -> None:
    def on_upload(files: Optional[list[str]], *values: Any) -> tuple[str, str, None]:
        input_dir = ctx.path_setting(values, "INPUT")
        try:
            stored = ui.store_uploads(files or [], input_dir)
        except (OSError, ValueError) as exc:
            return f"Upload failed: {exc}", ui.input_files_markdown(input_dir), None
        names = ", ".join(f"`{path.name}`" for path in stored)
        return f"Added {len(stored)} file(s) to `{input_dir}`: {names}", ui.input_files_markdown(input_dir), None

    def show_listing(*values: Any) -> str:
        return ui.input_files_markdown(ctx.path_setting(values, "INPUT"))

    parts["upload"].upload(
        on_upload, inputs=[parts["upload"], *setting_inputs], outputs=[parts["upload_message"], parts["listing"], parts["upload"]]
    )
    parts["refresh"].click(show_listing, inputs=setting_inputs, outputs=parts["listing"])
    widgets["PATH.INPUT"].blur(show_listing, inputs=setting_inputs, outputs=parts["listing"])
    parts["prompt_set"].input(lambda chosen: chosen or gr.skip(), inputs=parts["prompt_set"], outputs=widgets["PATH.PROMPTS"])


def _wire_settings(ctx: AppContext, parts: dict, setting_inputs: list, load_message: Any) -> None:
    def check(*values: Any) -> str:
        problem = ui.settings_problem(ctx.settings(values), ctx.config_path)
        return f"**Problem:** {problem}" if problem else "The settings are valid."

    def save(*values: Any) -> tuple[str, str]:
        return ui.save_settings(ctx.settings(values), ctx.config_path), ""

    parts["check"].click(check, inputs=setting_inputs, outputs=parts["message"])
    parts["save"].click(save, inputs=setting_inputs, outputs=[parts["message"], load_message])


def _wire_run(gr: Any, app: Any, ctx: AppContext, run: dict, results: dict, setting_inputs: list) -> None:
    run_outputs = [run["status"], run["progress"], run["log"], run["timer"]]
    report_outputs = [run["funnel"], run["report"], *_result_outputs(results)]

    def start(*values: Any) -> tuple:
        config, prompts, problem = ui.prepare_run(ctx.settings(values), ctx.config_path)
        if config is None:
            return f"**Not started**: {problem}", gr.skip(), gr.skip(), gr.Timer(active=False)
        message = ctx.controller.start(config, prompts)
        snapshot = ctx.controller.snapshot()
        return f"**{message}**", ui.progress_html(snapshot.progress), "", gr.Timer(active=True)

    def cancel() -> str:
        return f"**{ctx.controller.cancel()}**"

    def live_values(snapshot: ui.RunSnapshot) -> tuple:
        log_text = "\n".join(snapshot.log_lines)
        return ui.status_markdown(snapshot), ui.progress_html(snapshot.progress), log_text, gr.Timer(active=snapshot.active)

    def tick() -> tuple:
        snapshot = ctx.controller.snapshot()
        if snapshot.active:
            return (*live_values(snapshot), *[gr.skip()] * len(report_outputs))
        return (*live_values(snapshot), *_report_values(ctx, snapshot.output_dir, snapshot.report))

    def on_page_load(*values: Any) -> tuple:
        """A page opened during a run follows it; otherwise it shows the last run and report."""
        snapshot = ctx.controller.snapshot()
        report = snapshot.report or ui.read_run_report(ctx.path_setting(values, "OUTPUT"))
        return (*live_values(snapshot), ui.funnel_html(report), ui.report_markdown(report))

    run["start"].click(start, inputs=setting_inputs, outputs=run_outputs)
    run["cancel"].click(cancel, outputs=run["status"])
    run["timer"].tick(tick, outputs=run_outputs + report_outputs)
    app.load(on_page_load, inputs=setting_inputs, outputs=[*run_outputs, run["funnel"], run["report"]])


def _wire_results(app: Any, ctx: AppContext, results: dict, setting_inputs: list) -> None:
    def refresh(*values: Any) -> tuple:
        output_dir = ctx.path_setting(values, "OUTPUT")
        return _result_values(ctx, output_dir)

    def show_conversation(key: Optional[str], *values: Any) -> tuple:
        result = ui.read_chunk_result(ctx.path_setting(values, "OUTPUT"), key or "")
        return ui.conversation_messages(result), ui.chunk_text(result), ui.pair_rows(result)

    results["refresh"].click(refresh, inputs=setting_inputs, outputs=_result_outputs(results))
    results["conversation"].change(
        show_conversation,
        inputs=[results["conversation"], *setting_inputs],
        outputs=[results["chat"], results["chunk"], results["pairs"]],
    )
    # Filled when the page opens, so that an earlier run's results can be browsed at once.
    app.load(refresh, inputs=setting_inputs, outputs=_result_outputs(results))


def _result_outputs(results: dict) -> list[Any]:
    return [results[name] for name in ("summary", "conversation", "tossed", "failed", "files")]


def _result_values(ctx: AppContext, output_dir: Path) -> tuple:
    import gradio as gr

    chunk_results = ui.load_chunk_results(output_dir)
    choices = ui.conversation_choices(chunk_results)
    files = ui.stage_downloads(ui.output_files(output_dir), ctx.downloads_dir)
    summary = (
        f"**conversations: {len(choices)}** (from {len(chunk_results)} chunks) in `{output_dir}`."
        if chunk_results
        else f"No results in `{output_dir}` yet."
    )
    return (
        summary,
        gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
        ui.tossed_pair_rows(chunk_results),
        ui.failed_chunk_rows(chunk_results),
        files or None,
    )


def _report_values(ctx: AppContext, output_dir: Optional[Path], report: Optional[dict]) -> tuple:
    """The report, funnel and results once a run has ended (a cancelled run has
    no new report: the last one on disk, if any, is shown)."""
    if output_dir is None:
        import gradio as gr

        return (ui.funnel_html(report), ui.report_markdown(report), *[gr.skip()] * 5)
    report = report or ui.read_run_report(output_dir)
    return ui.funnel_html(report), ui.report_markdown(report), *_result_values(ctx, output_dir)


# ---------------------------------------------------------------- entry point


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The Verustoolkit WebUI.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: config.yaml)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported; there may be no network
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    with project_logging(handler, logging.INFO):
        app = build_app(args.config)
        app.queue(default_concurrency_limit=8)
        app.launch(server_name=args.host, server_port=args.port, css=APP_CSS, ssr_mode=False, show_error=True, quiet=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
