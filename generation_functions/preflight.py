"""Is there a model server at BASE_URL, and does it accept the key? Asked before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import httpx

from generation_functions.config import API_KEY_ENV_VARS, Config
from generation_functions.errors import ConfigurationRejected, EngineError, ParseError, RequestRejected, ServerUnreachable
from generation_functions.prompts import PLACEHOLDERS, few_shot_outputs, placeholders_in, render
from generation_functions.steps import QUESTION_GENERATION, STEPS, Sampling, Scope, Step, active_steps


def _models_url(base_url: str, mode: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/v1/models" if mode == "cohere" else f"{base}/models"


async def check_server(config: Config, timeout: float = 15.0, probe: bool = True) -> None:
    """Raise ServerUnreachable, with how to fix it, when a server is absent or refuses the key,
    and ConfigurationRejected when it refuses a model as configured.

    Uses the model listing, which costs no tokens. A model the listing does not
    name, or a server with no listing where one was asked for (404: perhaps a
    wrong path in BASE_URL), gets one test request of one token: some servers
    (llama.cpp) serve any name, others refuse it, and only asking tells.
    probe=False: reachability and key only.
    """
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        for base_url in config.base_urls:
            url = _models_url(base_url, config.system.MODE)
            try:
                response = await client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                raise ServerUnreachable(_unreachable_message(base_url, config, type(exc).__name__)) from None
            if response.status_code in (401, 403):
                raise ServerUnreachable(_rejected_message(base_url, config, response.status_code))
            listed = listed_models(response)
            for model, setting in configured_models(config).items():
                if probe and _needs_probe(model, listed, response.status_code):
                    await probe_model(config, base_url, model, setting, listed)


def configured_models(config: Config) -> dict[str, str]:
    """Each model the run asks, with the first setting that names it."""
    models: dict[str, str] = {}
    for setting in ("LOGICAL_MODEL", "LARGE_LOGICAL_MODEL"):
        models.setdefault(getattr(config.api, setting), f"API.{setting}")
    return models


def listed_models(response: httpx.Response) -> Optional[list[str]]:
    """The model names of a listing (OpenAI: data[].id; Cohere: models[].name), None when there is none."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    entries = (body.get("data") or body.get("models")) if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return None
    names = [entry.get("id") or entry.get("name") for entry in entries if isinstance(entry, dict)]
    return [name for name in names if isinstance(name, str)]


def _needs_probe(model: str, listed: Optional[list[str]], status: int) -> bool:
    if listed is None:
        return status == 404
    # An empty listing says nothing; Ollama lists "name:latest" for "name".
    return bool(listed) and model not in listed and f"{model}:latest" not in listed


async def probe_model(config: Config, base_url: str, model: str, setting: str, listed: Optional[list[str]]) -> None:
    """One request of one token, made as the run makes its own (same stop sequences):
    ConfigurationRejected if the server refuses it for good; anything else is left to the run."""
    from engine_wrapper_class import EngineWrapper, RequestStats, RetryPolicy, make_backends
    from generation_functions.concurrency import RequestLimiter
    from generation_functions.rejections import RequestShape, rejected_configuration

    backends = make_backends(
        config.system.MODE, config.system.COMPLETION_MODE, [base_url], config.api_key, model, config.system.REQUEST_TIMEOUT
    )
    retry = RetryPolicy(max_seconds=min(config.system.MAX_RETRY_SECONDS, 15.0))
    engine = EngineWrapper(backends, RequestLimiter(1), retry, RequestStats(), model)
    prompt = PING_PROMPT if config.system.COMPLETION_MODE else [{"role": "user", "content": PING_PROMPT}]
    stops = tuple(config.system.STOP_SEQUENCES) if config.system.STOP else ()
    try:
        await engine.generate(prompt, Sampling(temperature=0.0, max_tokens=1, stop=stops))
    except RequestRejected as exc:
        shape = RequestShape(model=model, model_setting=setting)
        raise rejected_configuration(exc, shape, f"a one-token test request for model {model!r}", listed) from None
    except ServerUnreachable:
        raise
    except EngineError:
        pass  # a server that keeps failing now: the run's own retries deal with it
    finally:
        await engine.close()


def _key_hint(config: Config) -> str:
    names = " or ".join(API_KEY_ENV_VARS[config.system.MODE])
    return f"put the key in the environment ({names}) or in config.yaml as API.API_KEY"


def _unreachable_message(base_url: str, config: Config, what: str) -> str:
    return (
        f"no model server answers at {base_url} ({what}).\n"
        "To fix it, either:\n"
        "  - start a local OpenAI-compatible server and point API.BASE_URL at it, for example\n"
        "      llama.cpp:  llama-server -m model.gguf --port 8080      -> http://127.0.0.1:8080/v1\n"
        "      Ollama:     ollama serve                                -> http://127.0.0.1:11434/v1\n"
        "      vLLM:       vllm serve MODEL --port 8000                -> http://127.0.0.1:8000/v1\n"
        f"  - or use a cloud API: set API.BASE_URL to its URL and {_key_hint(config)}."
    )


def _rejected_message(base_url: str, config: Config, status: int) -> str:
    state = "no API key was given" if not config.api_key else "the API key was rejected"
    return f"the server at {base_url} refused the request (HTTP {status}): {state}.\nTo fix it, {_key_hint(config)}."


# ---------------------------------------------------------------- processing.py --check

PING_PROMPT = "Reply with the single word OK."
# Pairs per chunk to assume when the question generation prompt shows no examples.
_EXPECTED_PAIRS_FALLBACK = 4


@dataclass
class CheckResult:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def problem(self, line: str) -> None:
        self.problems.append(line)
        self.lines.append(f"  PROBLEM: {line}")

    def warn(self, line: str) -> None:
        """Worth knowing, but the run would work: the check still passes."""
        self.lines.append(f"  WARNING: {line}")


def check_few_shot_examples(prompts: dict, parsers: dict, result: CheckResult) -> dict[str, list[str]]:
    """Every example output a prompt shows must parse with its step's processor."""
    examples: dict[str, list[str]] = {}
    for name, prompt in prompts.items():
        outputs = few_shot_outputs(prompt)
        examples[name] = outputs
        failed = 0
        for number, output in enumerate(outputs, start=1):
            try:
                parsers[name](output)
            except ParseError as exc:
                failed += 1
                result.problem(f"{name}: example output {number} does not parse: {exc}")
        result.say(f"  {name}: {len(outputs)} example outputs, {len(outputs) - failed} parse")
    return examples


async def ping_models(config: Config, result: CheckResult) -> None:
    """One tiny request to each configured model."""
    from engine_wrapper_class import RequestStats, make_engine
    from generation_functions.concurrency import RequestLimiter

    limiter, stats = RequestLimiter(2), RequestStats()
    prompt = PING_PROMPT if config.system.COMPLETION_MODE else [{"role": "user", "content": PING_PROMPT}]
    for model in dict.fromkeys([config.api.LOGICAL_MODEL, config.api.LARGE_LOGICAL_MODEL]):
        engine = make_engine(config, model, limiter, stats)
        try:
            completion = await engine.generate(prompt, Sampling(temperature=0.0, max_tokens=8))
            result.say(f"  {model}: answered {completion.text.strip()[:40]!r}")
        except EngineError as exc:
            result.problem(f"model {model} did not answer: {exc}")
        finally:
            await engine.close()


async def estimate_plan(config: Config, prompts: dict, examples: dict[str, list[str]], result: CheckResult) -> None:
    """Documents, chunks, and a range of the requests and tokens a run would still need:
    calls already stored in OUTPUT are reused by a rerun, so they are not counted."""
    from generation_functions.chunking import chunk_documents
    from generation_functions.documents import SkippedFile, iter_documents
    from generation_functions.rerun_estimate import ChunkReplayer

    documents, skipped, chunk_chars, reuse = 0, [], [], []
    limit = config.system.SUBSET_SIZE if config.system.USE_SUBSET else None

    def readable():
        nonlocal documents
        for item in iter_documents(config.input_dir):
            if isinstance(item, SkippedFile):
                skipped.append(item)
                continue
            documents += 1
            yield item

    replayer = ChunkReplayer(config, prompts)
    try:
        for chunk in chunk_documents(readable(), config.system.CHUNK_SIZE):
            if limit is None or len(chunk_chars) < limit:
                chunk_chars.append(len(chunk.text))
                reuse.append(await replayer.replay(chunk))
    finally:
        replayer.close()
    chunks = len(chunk_chars)
    result.say(f"  documents: {documents} readable, {len(skipped)} skipped")
    for item in skipped[:10]:
        result.say(f"    skipped {item.path}: {item.reason}")
    result.say(f"  chunks to process: {chunks}" + (" (USE_SUBSET)" if limit is not None else ""))
    if not chunks:
        result.problem(f"no text to work on in {config.input_dir}")
        return
    pairs = _mean_pairs(examples.get(QUESTION_GENERATION, []))
    mean_chunk = sum(chunk_chars) / len(chunk_chars)
    fewest = most = prompt_chars = completion_chars = 0.0  # per chunk
    for step in active_steps(config):
        calls = _calls_per_chunk(step, pairs, config.system.DOUBLE_CHECK_COUNTER)
        fewest, most = fewest + calls[0], most + calls[1]
        prompt = prompts[step.prompt_name]
        carries_chunk = "text" in placeholders_in(prompt)
        prompt_chars += calls[0] * (_static_chars(prompt) + (mean_chunk if carries_chunk else 0))
        completion_chars += calls[0] * _mean_chars(examples.get(step.prompt_name))
    # A chunk whose every call is stored costs nothing; a partly done one, what it lacks.
    new_fewest = sum(0 if r.complete else max(1.0, fewest - r.stored_calls) for r in reuse)
    new_most = sum(0 if r.complete else max(1.0, most - r.stored_calls) for r in reuse)
    share_new = new_fewest / (chunks * fewest) if fewest else 1.0
    stored = sum(r.stored_calls for r in reuse)
    finished = sum(r.complete for r in reuse)
    result.say(f"  about {pairs:.1f} question/answer pairs per chunk (from the question generation examples)")
    if stored:
        result.say(
            f"  stored in {config.output_dir}: {stored} calls a rerun reuses; "
            f"{finished} of {chunks} chunks need no new request"
        )
    if finished == chunks:
        result.say("  new requests: 0 (every call is stored; a rerun only rebuilds the datasets)")
        return
    result.say(f"  new requests: {new_fewest:.0f} if every vote agrees, up to {new_most:.0f}")
    result.say(
        f"  tokens of the new requests (rough, chars/4): ~{share_new * chunks * prompt_chars / 4:,.0f} prompt + "
        f"~{share_new * chunks * completion_chars / 4:,.0f} completion"
    )


def _calls_per_chunk(step: Step, pairs: float, votes: int) -> tuple[float, float]:
    """Fewest and most requests one chunk makes of a step (every vote agreeing; every retry used)."""
    fewest, most = (votes // 2 + 1, votes) if step.votes else (1, 1 + step.check_retries)
    per_chunk = pairs if step.scope is Scope.PAIR else 1
    return fewest * per_chunk, most * per_chunk


def _static_chars(prompt) -> int:
    """Size of a prompt without its placeholder values: the part every call repeats."""
    rendered = render(prompt, {name: "" for name in PLACEHOLDERS})
    return len(rendered) if isinstance(rendered, str) else sum(len(m["content"]) for m in rendered)


def _mean_pairs(outputs: list[str]) -> float:
    from generation_functions.output_processors import parse_question_generation

    counts = []
    for output in outputs:
        try:
            counts.append(len(parse_question_generation(output)))
        except ParseError:
            pass
    return sum(counts) / len(counts) if counts else float(_EXPECTED_PAIRS_FALLBACK)


def _mean_chars(outputs) -> float:
    return sum(map(len, outputs)) / len(outputs) if outputs else 1000.0


async def server_check(config: Config, result: CheckResult) -> None:
    """Is the server there, does it take the key, and does each model answer? (the WebUI's "Test server")"""
    result.say("Server:")
    try:
        await check_server(config)
        result.say(f"  {', '.join(config.base_urls)}: reachable")
        await ping_models(config, result)
    except ServerUnreachable as exc:
        result.problem(str(exc).splitlines()[0])
    except ConfigurationRejected as exc:
        result.problem(f"{exc}. To fix it: {exc.setting}")


async def constraints_check(config: Config, result: CheckResult) -> None:
    """Which constrained-output field each model's server honours: what the run would send."""
    from generation_functions.constraint_probe import probe_model_constraints

    setting = config.system.CONSTRAINED_OUTPUT
    result.say(f"Constrained output (SYSTEM.CONSTRAINED_OUTPUT: {setting}):")
    if setting == "off":
        result.say("  off: outputs are not constrained; those that miss the format are asked again")
        return
    for model in configured_models(config):
        probe = await probe_model_constraints(config, model)
        result.say(f"  {probe.describe()}")
        if probe.field is None:
            result.say(f"    the run would go on unconstrained for {model} (README: \"Constrained output\")")


def examples_check(prompts: dict, result: CheckResult) -> dict[str, list[str]]:
    result.say("Few-shot examples:")
    parsers = {step.prompt_name: step.processor for step in STEPS}
    return check_few_shot_examples(prompts, parsers, result)


def format_fit_check(config: Config, examples: dict[str, list[str]], result: CheckResult) -> None:
    """Under constrained output: the examples the step's grammar or schema would keep the model from
    writing (every kind the setting may use, since which one the server honours is the probe's answer)."""
    from generation_functions.constraints import candidate_fields
    from generation_functions.format_fit import misfits

    kinds = {field.kind for field in candidate_fields(config.system.CONSTRAINED_OUTPUT, config.system.MODE)}
    if not kinds:
        return
    found = misfits(active_steps(config), examples, {step.prompt_name: kinds for step in STEPS})
    for misfit in found:
        result.warn(misfit.describe())
    if found:
        result.say(
            "    a constrained run keeps the model to its step's format, not to these examples: change the examples, "
            "or set SYSTEM.CONSTRAINED_OUTPUT: off for this prompt set"
        )
    else:
        result.say(f"  every example fits its step's {' and '.join(sorted(kinds))} (SYSTEM.CONSTRAINED_OUTPUT: "
                   f"{config.system.CONSTRAINED_OUTPUT})")


async def plan_check(config: Config, prompts: dict, result: CheckResult) -> None:
    """The examples' parse check and the estimate, without the server (the WebUI's "Estimate")."""
    examples = examples_check(prompts, result)
    format_fit_check(config, examples, result)
    result.say("What the run would do:")
    await estimate_plan(config, prompts, examples, result)


async def run_check(config: Config, prompts: dict) -> CheckResult:
    """What `processing.py --check` prints; generates nothing."""
    result = CheckResult()
    result.say(f"Config: OK (input {config.input_dir}, output {config.output_dir})")
    result.say("Prompts: OK (" + ", ".join(str(d) for d in config.prompt_dirs) + ")")
    examples = examples_check(prompts, result)
    format_fit_check(config, examples, result)
    await server_check(config, result)
    if not result.problems:
        await constraints_check(config, result)
    result.say("What the run would do:")
    await estimate_plan(config, prompts, examples, result)
    result.say("Check passed: nothing was generated." if not result.problems else f"{len(result.problems)} problem(s) found.")
    return result
