"""The WebUI page: gradio widgets in five tabs, wired to the webui modules.

Nothing here decides anything: what a widget does lives in the modules it
calls (settings_form, config_file, uploads, run_controller, checks, results,
rendering, downloads, chat_tab, chat_view), which are tested without a browser.

What the server decides, never the browser: where uploads go (PATH.INPUT as
saved in the config file), which OUTPUT the Results tab reads (the run's, or
the saved one), and the API key (never sent to the page; an empty field keeps
the saved one; the Chat tab sends it only to the saved API.BASE_URL servers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from generation_functions.datasets import DATASET_FILES, RUN_REPORT
from generation_functions.errors import ConfigError
from webui import chat_view, checks, rendering
from webui.chat_tab import CUSTOM, LARGE, ChatOptions, ChatService, model_choices, stopped
from webui.config_file import (
    Problems,
    describe_problems,
    read_settings_file,
    resolve_setting_path,
    save_settings,
    settings_problem,
    split_problems,
    stored_secret_names,
    stored_settings,
)
from webui.downloads import DownloadStage, output_files
from webui.prompt_sets import prompt_set_choices
from webui.results import (
    ALL,
    chunk_text,
    conversation_choices,
    failed_chunks,
    fate_choices,
    filter_pairs,
    load_chunk_results,
    pair_fates,
    read_chunk_result,
    read_run_report,
    training_rows,
)
from webui.run_controller import RunController, RunSnapshot, prepare_run
from webui.settings_form import (
    FormValueError,
    SettingField,
    help_from_readme,
    lookup,
    section_title,
    setting_fields,
    settings_from_values,
    values_from_settings,
    widget_info,
)
from webui.uploads import input_files_markdown, store_uploads, upload_message

TICK_SECONDS = 0.5
DOWNLOAD_NAMES = (*DATASET_FILES, RUN_REPORT)
PROMPT_SET_KEY = "PATH.PROMPTS"
DOCUMENT_SECTIONS = ("PATH",)  # on the Documents tab; every other section is on the Settings tab


@dataclass
class AppContext:
    """What every handler of one app needs to know."""

    config_path: Path
    app_dir: Path
    downloads: DownloadStage
    fields: list[SettingField] = field(default_factory=setting_fields)
    controller: RunController = field(default_factory=RunController)
    help_texts: dict[str, str] = field(default_factory=dict)
    chat: Optional[ChatService] = None  # made from config_path; its search index opens on the first question

    def __post_init__(self) -> None:
        if self.chat is None:
            self.chat = ChatService(self.config_path)

    def stored(self) -> dict:
        return stored_settings(self.config_path)

    def form(self, values: tuple[Any, ...]) -> dict:
        """The form's settings, with the saved secret where its field is empty (raises FormValueError)."""
        return settings_from_values(values, self.fields, self.stored())

    def saved_path(self, key: str) -> Path:
        """A PATH folder as saved in the config file on the server."""
        found, value = lookup(self.stored(), ("PATH", key))
        if not found or not isinstance(value, str):
            value = next(f.default for f in self.fields if f.name == f"PATH.{key}")
        return resolve_setting_path(value, self.config_path)

    def results_dir(self) -> Path:
        """The latest run's OUTPUT in this app, else the saved one."""
        return self.controller.snapshot().output_dir or self.saved_path("OUTPUT")

    def info(self, setting: SettingField) -> str:
        return widget_info(setting, self.help_texts)


def read_help_texts(app_dir: Path) -> dict[str, str]:
    try:
        return help_from_readme((app_dir / "README.md").read_text(encoding="utf-8"))
    except OSError:
        return {}


def key_label_css(fields: list[SettingField]) -> str:
    """Each widget's label carries its config key, small, beside it."""
    return "\n".join(
        f'#{f.elem_id} [data-testid="block-info"]::after, #{f.elem_id} label > span:first-of-type::after '
        f'{{ content: "{f.name}"; font-size: 0.75em; font-family: var(--font-mono, monospace); opacity: 0.75; margin-left: 0.6em; }}'
        for f in fields
    )


# ---------------------------------------------------------------- widgets


def secret_placeholder(is_set: bool) -> str:
    if is_set:
        return "A key is saved in the config file (not shown). Leave empty to keep it; type to replace it."
    return "Empty: the key is read from the environment (see the help)."


def setting_widget(gr: Any, ctx: AppContext, setting: SettingField, value: Any, secret_set: bool) -> Any:
    """The widget that fits a config key. Numbers carry no min/max: gradio would
    reject an out-of-range number with its own message, and the rules and
    messages must be processing.py's (the bounds are shown in the help)."""
    common = dict(label=setting.label, info=ctx.info(setting), elem_id=setting.elem_id)
    if setting.name == PROMPT_SET_KEY:
        choices = prompt_set_choices(ctx.app_dir, ctx.config_path, value)
        return gr.Dropdown(choices=choices, value=value, allow_custom_value=True, **common)
    if setting.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if setting.kind in ("int", "float"):
        return gr.Number(value=value, precision=None, step=1, **common)
    if setting.kind == "choice":
        return gr.Dropdown(choices=list(setting.choices), value=value, **common)
    if setting.kind == "secret":
        return gr.Textbox(value="", type="password", placeholder=secret_placeholder(secret_set), **common)
    if setting.kind in ("long_text", "string_list", "yaml"):
        return gr.Textbox(value=value, lines=4, max_lines=12, **common)
    if setting.kind == "url_list":
        return gr.Textbox(value=value, lines=1, max_lines=6, **common)
    return gr.Textbox(value=value, **common)


def field_updates(gr: Any, ctx: AppContext, problems: Problems) -> list[Any]:
    """Each widget's help, with its problem in front where it has one."""
    updates = []
    for setting in ctx.fields:
        texts = problems.by_field.get(setting.name)
        if texts:
            updates.append(gr.update(info="⚠ " + " ".join(texts) + " | " + ctx.info(setting), elem_classes=["vt-invalid"]))
        else:
            updates.append(gr.update(info=ctx.info(setting), elem_classes=[]))
    return updates


def checked_form(ctx: AppContext, values: tuple[Any, ...]) -> tuple[Optional[dict], Problems]:
    """The form's settings and their problems (a YAML field that does not parse is one)."""
    try:
        data = ctx.form(values)
    except FormValueError as exc:
        return None, Problems(by_field={exc.setting.name: [str(exc)]})
    problem = settings_problem(data, ctx.config_path)
    return data, split_problems(problem, ctx.fields)


# ---------------------------------------------------------------- the page


def build_app(config_path: Path, app_dir: Path, downloads: DownloadStage) -> tuple[Any, str]:
    """The gradio Blocks of the WebUI and its CSS; nothing runs until it is launched."""
    import gradio as gr

    ctx = AppContext(config_path=config_path.resolve(), app_dir=app_dir, downloads=downloads, help_texts=read_help_texts(app_dir))
    data, load_problem = read_settings_file(ctx.config_path)
    initial = dict(zip((f.name for f in ctx.fields), values_from_settings(data, ctx.fields)))
    secrets_set = set(stored_secret_names(data, ctx.fields))
    widgets: dict[str, Any] = {}

    def make_widgets(sections: tuple[str, ...], exclude: bool = False) -> None:
        current = None
        for setting in ctx.fields:
            if (setting.section in sections) == exclude:
                continue
            if exclude and setting.section != current:
                current = setting.section
                gr.Markdown(f"### {section_title(current)} <small>`{current}`</small>")
            widgets[setting.name] = setting_widget(gr, ctx, setting, initial[setting.name], setting.name in secrets_set)

    # delete_cache: gradio's copies of uploaded documents are removed within the hour and at exit.
    with gr.Blocks(title="Verustoolkit", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown(f"# Verustoolkit\nSettings from `{ctx.config_path}`. Nothing is written to it until you save.")
        load_message = gr.Markdown(_load_text(load_problem), elem_id="load-message")
        with gr.Tabs():
            with gr.Tab("Documents", id="documents"):
                documents = _documents_tab(gr, ctx, make_widgets)
            with gr.Tab("Settings", id="settings"):
                settings_tab = _settings_tab(gr, make_widgets)
            with gr.Tab("Run", id="run"):
                run_tab = _run_tab(gr)
            with gr.Tab("Results", id="results"):
                results_tab = _results_tab(gr)
            with gr.Tab("Chat", id="chat"):
                chat_tab = _chat_tab(gr)
        setting_inputs = [widgets[f.name] for f in ctx.fields]
        _wire_documents(gr, ctx, documents, widgets)
        _wire_settings(gr, app, ctx, settings_tab, setting_inputs, load_message)
        _wire_run(gr, app, ctx, run_tab, results_tab, setting_inputs)
        _wire_results(gr, app, ctx, results_tab)
        _wire_chat(gr, app, ctx, chat_tab)
    return app, rendering.CSS + chat_view.CSS + key_label_css(ctx.fields)


def _load_text(problem: str) -> str:
    return f"**Problem in the config file:** {problem}" if problem else ""


def _documents_tab(gr: Any, ctx: AppContext, make_widgets: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    gr.Markdown(
        "Documents are read from the input folder (nested folders too). Uploads go into the input folder "
        "**as saved in the config file**; change the folder here, then save, to upload elsewhere."
    )
    parts["upload"] = gr.File(label="Upload documents into the saved input folder", file_count="multiple", type="filepath")
    parts["upload_message"] = gr.Markdown("", elem_id="upload-message")
    parts["refresh"] = gr.Button("Refresh the file list", size="sm")
    parts["listing"] = gr.Markdown(input_files_markdown(ctx.saved_path("INPUT")), elem_id="input-listing")
    gr.Markdown("### Folders and prompt set <small>`PATH`</small>")
    make_widgets(DOCUMENT_SECTIONS)
    return parts


def _settings_tab(gr: Any, make_widgets: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    make_widgets(DOCUMENT_SECTIONS, exclude=True)
    with gr.Row():
        parts["check"] = gr.Button("Check settings", elem_id="check-settings")
        parts["save"] = gr.Button("Save settings to the config file", variant="primary", elem_id="save-settings")
    parts["message"] = gr.Markdown("", elem_id="settings-message")
    return parts


def _run_tab(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    gr.Markdown("Before spending: test the server and estimate the work for the settings in the form (nothing is generated).")
    with gr.Row():
        parts["test_server"] = gr.Button("Test server", elem_id="test-server")
        parts["estimate"] = gr.Button("Estimate requests and tokens", elem_id="estimate")
    parts["check_output"] = gr.HTML("", elem_id="check-output")
    with gr.Row():
        parts["start"] = gr.Button("Start run", variant="primary", elem_id="start-run")
        parts["cancel"] = gr.Button("Cancel run", variant="stop", elem_id="cancel-run")
    parts["status"] = gr.Markdown("**Idle**: no run yet.", elem_id="run-status")
    parts["progress"] = gr.HTML(rendering.progress_html({}), elem_id="run-progress")
    parts["log"] = gr.Textbox(label="Log", lines=10, max_lines=10, interactive=False, autoscroll=True, elem_id="run-log")
    gr.Markdown("### Run report")
    parts["funnel"] = gr.HTML(rendering.funnel_html(None), elem_id="run-funnel")
    parts["report"] = gr.Markdown(rendering.report_markdown(None), elem_id="run-report")
    parts["timer"] = gr.Timer(TICK_SECONDS, active=False)
    return parts


def _results_tab(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    parts["refresh"] = gr.Button("Refresh results", size="sm", elem_id="refresh-results")
    parts["summary"] = gr.Markdown("", elem_id="results-summary")
    gr.Markdown("### Download")
    with gr.Row(elem_id="output-files"):
        parts["downloads"] = [
            gr.DownloadButton(name, value=None, visible=False, size="sm", elem_id=f"download-{name.replace('.', '-')}")
            for name in DOWNLOAD_NAMES
        ]
    gr.Markdown("### Conversations")
    parts["conversation"] = gr.Dropdown(choices=[], label="Conversation", info="One per chunk that kept pairs.", elem_id="conversation-choice")
    with gr.Row():
        with gr.Column(scale=3):
            parts["chat"] = gr.HTML(rendering.conversation_html(None), elem_id="conversation")
        with gr.Column(scale=2):
            parts["chunk"] = gr.HTML("", elem_id="source-chunk")
    gr.Markdown("The rows the datasets hold for this conversation (what you train on):")
    parts["rows"] = gr.HTML("", elem_id="training-rows")
    gr.Markdown("### Every question/answer pair and its fate")
    with gr.Row():
        parts["search"] = gr.Textbox(label="Search", placeholder="words in a question, answer or file name", scale=3, elem_id="pair-search")
        parts["fate"] = gr.Dropdown(choices=[ALL], value=ALL, label="Fate", scale=2, elem_id="pair-fate")
    parts["pairs"] = gr.HTML("", elem_id="pairs")
    gr.Markdown("### Chunks without questions or conversation")
    parts["failed"] = gr.HTML("", elem_id="failed-chunks")
    return parts


def _chat_tab(gr: Any) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    gr.Markdown(
        "Ask a model about your documents. Each question is searched in the documents; the chunks found go into "
        "the system prompt exactly as in the RAG training data (`FINAL_ASSISTANT_PROMPT_RAG`), followed by the "
        "conversation so far. The chat uses the **saved** config (save your settings first); the API key stays "
        "on the server and goes only to the `API.BASE_URL` servers."
    )
    with gr.Row():
        parts["model"] = gr.Dropdown(choices=model_choices(None), value=LARGE, label="Model", scale=3, elem_id="chat-model")
        parts["base_url"] = gr.Textbox(
            label="Base URL", placeholder="empty: the first API.BASE_URL", visible=False, scale=3, elem_id="chat-base-url"
        )
        parts["custom_model"] = gr.Textbox(label="Model name", placeholder="e.g. verus-8b", visible=False, scale=2, elem_id="chat-custom-model")
    with gr.Row():
        parts["rag"] = gr.Checkbox(
            value=True, label="Search the documents (RAG)", scale=2, elem_id="chat-rag",
            info="Off: the no-RAG prompt alone, what the model learned.",
        )
        parts["top_k"] = gr.Slider(1, 50, value=5, step=1, label="Chunks per question (top-k)", scale=3, elem_id="chat-top-k")
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            parts["temperature"] = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature", elem_id="chat-temperature")
            parts["max_tokens"] = gr.Number(value=1024, precision=0, minimum=1, label="Longest answer (tokens)", elem_id="chat-max-tokens")
    parts["status"] = gr.HTML("", elem_id="chat-status")
    parts["log"] = gr.HTML(
        chat_view.EMPTY, autoscroll=True, max_height=700, js_on_load=chat_view.KEEP_SOURCES_OPEN_JS, elem_id="chat-log"
    )
    with gr.Row():
        parts["question"] = gr.Textbox(
            label="Question", placeholder="Ask about your documents (Enter sends)", lines=1, max_lines=6, scale=6, elem_id="chat-question"
        )
        with gr.Column(scale=1, min_width=120):
            parts["send"] = gr.Button("Send", variant="primary", elem_id="chat-send")
            parts["clear"] = gr.Button("Clear", elem_id="chat-clear")
    parts["update_index"] = gr.Button("Build or update the search index now", size="sm", elem_id="chat-update-index")
    parts["turns"] = gr.State([])
    return parts


# ---------------------------------------------------------------- wiring


def _wire_documents(gr: Any, ctx: AppContext, parts: dict, widgets: dict) -> None:
    def on_upload(files: Optional[list[str]]) -> tuple[str, str, None]:
        input_dir = ctx.saved_path("INPUT")  # the server's folder, never one the browser names
        try:
            stored = store_uploads(files or [], input_dir)
        except (OSError, ValueError) as exc:
            return f"Upload failed: {exc}", input_files_markdown(input_dir), None
        return upload_message(stored, input_dir), input_files_markdown(input_dir), None

    def show_listing() -> str:
        return input_files_markdown(ctx.saved_path("INPUT"))

    parts["upload"].upload(on_upload, inputs=[parts["upload"]], outputs=[parts["upload_message"], parts["listing"], parts["upload"]])
    parts["refresh"].click(show_listing, outputs=parts["listing"])


def _wire_settings(gr: Any, app: Any, ctx: AppContext, parts: dict, setting_inputs: list, load_message: Any) -> None:
    def check(*values: Any) -> list:
        _, problems = checked_form(ctx, values)
        text = "The settings are valid." if not problems else "**Problems:**\n" + describe_problems(problems, ctx.fields)
        return [text, *field_updates(gr, ctx, problems)]

    def save(*values: Any) -> list:
        data, problems = checked_form(ctx, values)
        if data is None:
            return ["**Not saved:**\n" + describe_problems(problems, ctx.fields), gr.skip(), *field_updates(gr, ctx, problems)]
        result = save_settings(data, ctx.config_path, ctx.fields)
        if not result.saved:
            text = "**Not saved:**\n" + describe_problems(result.problems, ctx.fields) if result.problems else result.message
            return [text, gr.skip(), *field_updates(gr, ctx, result.problems)]
        return [result.message, "", *field_updates(gr, ctx, Problems())]

    def load_from_file() -> list:
        """A page (re)opened shows the config file as saved now, not as it was at startup."""
        data, problem = read_settings_file(ctx.config_path)
        secrets = set(stored_secret_names(data, ctx.fields))
        updates = []
        for setting, value in zip(ctx.fields, values_from_settings(data, ctx.fields)):
            if setting.kind == "secret":
                updates.append(gr.update(value="", placeholder=secret_placeholder(setting.name in secrets)))
            else:
                updates.append(gr.update(value=value))
        return [_load_text(problem), *updates]

    outputs = [parts["message"], *setting_inputs]
    parts["check"].click(check, inputs=setting_inputs, outputs=outputs)
    parts["save"].click(save, inputs=setting_inputs, outputs=[parts["message"], load_message, *setting_inputs])
    app.load(load_from_file, outputs=[load_message, *setting_inputs])


def _wire_run(gr: Any, app: Any, ctx: AppContext, run: dict, results: dict, setting_inputs: list) -> None:
    run_outputs = [run["status"], run["progress"], run["log"], run["timer"]]
    report_outputs = [run["funnel"], run["report"], *_result_outputs(results)]

    def prepared(values: tuple[Any, ...]) -> tuple[Any, dict, str]:
        data, problems = checked_form(ctx, values)
        if data is None or problems:
            return None, {}, "; ".join(problems.all())
        return prepare_run(data, ctx.config_path)

    def start(*values: Any) -> tuple:
        config, prompts, problem = prepared(values)
        if config is None:
            return f"**Not started**: {problem}", gr.skip(), gr.skip(), gr.Timer(active=False)
        message = ctx.controller.start(config, prompts)
        snapshot = ctx.controller.snapshot()
        return f"**{message}**", rendering.progress_html(snapshot.progress), "", gr.Timer(active=True)

    def test_server(*values: Any) -> str:
        config, _, problem = prepared(values)
        if config is None:
            return rendering.check_html([f"PROBLEM: {problem}"], [problem])
        result = checks.test_server(config)
        return rendering.check_html(result.lines, result.problems)

    def estimate(*values: Any) -> str:
        config, prompts, problem = prepared(values)
        if config is None:
            return rendering.check_html([f"PROBLEM: {problem}"], [problem])
        result = checks.estimate(config, prompts)
        return rendering.check_html(result.lines, result.problems)

    def cancel() -> str:
        return f"**{ctx.controller.cancel()}**"

    def live_values(snapshot: RunSnapshot) -> tuple:
        log_text = "\n".join(snapshot.log_lines)
        return rendering.status_markdown(snapshot), rendering.progress_html(snapshot.progress), log_text, gr.Timer(active=snapshot.active)

    def tick() -> tuple:
        snapshot = ctx.controller.snapshot()
        if snapshot.active:
            return (*live_values(snapshot), *[gr.skip()] * len(report_outputs))
        report = snapshot.report or read_run_report(ctx.results_dir())
        return (*live_values(snapshot), rendering.funnel_html(report), rendering.report_markdown(report), *_result_values(gr, ctx))

    def on_page_load() -> tuple:
        """A page opened during a run follows it; otherwise it shows the last run and report."""
        snapshot = ctx.controller.snapshot()
        report = snapshot.report or read_run_report(ctx.results_dir())
        return (*live_values(snapshot), rendering.funnel_html(report), rendering.report_markdown(report))

    run["start"].click(start, inputs=setting_inputs, outputs=run_outputs)
    run["test_server"].click(test_server, inputs=setting_inputs, outputs=run["check_output"])
    run["estimate"].click(estimate, inputs=setting_inputs, outputs=run["check_output"])
    run["cancel"].click(cancel, outputs=run["status"])
    run["timer"].tick(tick, outputs=run_outputs + report_outputs)
    app.load(on_page_load, outputs=[*run_outputs, run["funnel"], run["report"]])


def _wire_results(gr: Any, app: Any, ctx: AppContext, results: dict) -> None:
    def refresh() -> tuple:
        return _result_values(gr, ctx)

    def show_conversation(key: Optional[str]) -> tuple:
        output_dir = ctx.results_dir()
        result = read_chunk_result(output_dir, key or "")
        chunk = f'<div class="vt-role">Source chunk</div>{rendering.text(chunk_text(result))}' if result else ""
        rows = rendering.training_rows_html(training_rows(output_dir, key)) if result else ""
        return rendering.conversation_html((result or {}).get("conversation")), chunk, rows

    def show_pairs(search: str, fate: str) -> str:
        fates = pair_fates(load_chunk_results(ctx.results_dir()))
        return rendering.pairs_html(filter_pairs(fates, search, fate), len(fates))

    results["refresh"].click(refresh, outputs=_result_outputs(results))
    results["conversation"].change(
        show_conversation, inputs=results["conversation"], outputs=[results["chat"], results["chunk"], results["rows"]]
    )
    results["search"].submit(show_pairs, inputs=[results["search"], results["fate"]], outputs=results["pairs"])
    results["fate"].change(show_pairs, inputs=[results["search"], results["fate"]], outputs=results["pairs"])
    # Filled when the page opens, so that an earlier run's results can be browsed at once.
    app.load(refresh, outputs=_result_outputs(results))


def _wire_chat(gr: Any, app: Any, ctx: AppContext, chat: dict) -> None:
    names = ("question", "model", "base_url", "custom_model", "rag", "top_k", "temperature", "max_tokens", "turns")
    inputs = [chat[name] for name in names]
    outputs = [chat["log"], chat["status"], chat["turns"], chat["question"]]

    async def send(question, choice, base_url, model, rag, top_k, temperature, max_tokens, turns):
        options = ChatOptions(
            choice or LARGE, base_url or "", model or "", bool(rag), int(top_k) if top_k else None,
            float(temperature if temperature is not None else 0.7), int(max_tokens or 1024),
        )
        turns = turns if turns is not None else []
        cleared = False
        async for log_html, status in chat_view.page_values(ctx.chat.ask(question or "", options, turns)):
            # The question box is emptied once: whatever is typed during the answer stays.
            yield log_html, status, turns, (gr.skip() if cleared else "")
            cleared = True

    async def clear(turns: Optional[list]) -> tuple:
        # Emptied in place: an answer still streaming sees it and stops, even before gradio cancels it;
        # the empty chat is shown once it has stopped, so that none of its updates comes after.
        turns = turns if turns is not None else []
        running = [turn for turn in turns if turn.active]
        turns.clear()
        await stopped(running)
        return chat_view.EMPTY, chat_view.status_html(ctx.chat.intro_status()), turns, ""

    async def update_index() -> str:
        update = await ctx.chat.update_index()
        return chat_view.status_html(update.status, update.problem)

    def choose_model(choice: str) -> tuple:
        custom = choice == CUSTOM
        return gr.update(visible=custom), gr.update(visible=custom)

    def on_page_load() -> tuple:
        """The saved config's model names and TOP_K; nothing is indexed before a question."""
        try:
            config = ctx.chat.saved_config()
        except ConfigError:  # shown at the first question
            config = None
        top_k = config.retrieval.TOP_K if config is not None else gr.skip()
        return gr.update(choices=model_choices(config)), top_k, chat_view.status_html(ctx.chat.intro_status())

    # trigger_mode="once": a second Enter while an answer streams is ignored, not queued beside it.
    sent = chat["send"].click(send, inputs=inputs, outputs=outputs, trigger_mode="once")
    submitted = chat["question"].submit(send, inputs=inputs, outputs=outputs, trigger_mode="once")
    chat["clear"].click(clear, inputs=chat["turns"], outputs=outputs, cancels=[sent, submitted])
    chat["update_index"].click(update_index, outputs=chat["status"])
    chat["model"].change(choose_model, inputs=chat["model"], outputs=[chat["base_url"], chat["custom_model"]])
    chat["rag"].change(lambda rag: gr.update(interactive=bool(rag)), inputs=chat["rag"], outputs=chat["top_k"])
    app.load(on_page_load, outputs=[chat["model"], chat["top_k"], chat["status"]])


def _result_outputs(results: dict) -> list[Any]:
    return [results[name] for name in ("summary", "conversation", "fate", "pairs", "failed")] + results["downloads"]


def _result_values(gr: Any, ctx: AppContext) -> tuple:
    output_dir = ctx.results_dir()
    chunk_results = load_chunk_results(output_dir)
    choices = conversation_choices(chunk_results)
    fates = pair_fates(chunk_results)
    staged = ctx.downloads.stage(output_files(output_dir))
    summary = (
        f"**conversations: {len(choices)}** (from {len(chunk_results)} chunks) in `{output_dir}`."
        if chunk_results
        else f"No results in `{output_dir}` yet."
    )
    downloads = [
        gr.DownloadButton(label=f"{name} ({_size(staged[name])})", value=str(staged[name]), visible=True)
        if name in staged
        else gr.DownloadButton(value=None, visible=False)
        for name in DOWNLOAD_NAMES
    ]
    return (
        summary,
        gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
        gr.Dropdown(choices=fate_choices(fates), value=ALL),
        rendering.pairs_html(fates, len(fates)),
        rendering.failed_chunks_html(failed_chunks(chunk_results)),
        *downloads,
    )


def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
