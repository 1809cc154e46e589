"""The pipeline's control flow: what happens to one chunk, and the run around it.

Each chunk moves through its own stages as soon as its own work is done; no
stage waits for every chunk to finish the stage before it:

    question generation -> per pair: question check votes -> answer check votes
    -> context repair -> one conversation per chunk, checked in code

`run_pipeline` is the one run function behind processing.py and app.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator, Optional, TypeVar

from engine_wrapper_class import RequestStats, make_budget, make_engine
from generation_functions import output_processors as parsers
from generation_functions.chunking import Chunk, chunk_documents
from generation_functions.concurrency import RequestLimiter
from generation_functions.config import Config
from generation_functions.constraint_probe import choose_constraints, record_choice
from generation_functions.constraints import constraint_for, is_bounded
from generation_functions.format_fit import misfits, run_warnings
from generation_functions.conversation_check import check_conversation
from generation_functions.datasets import RUN_REPORT, PretrainingWriter, write_datasets
from generation_functions.documents import Document, SkippedFile, check_something_readable, iter_documents
from generation_functions.budget import BudgetExceeded
from generation_functions.errors import ConfigError, InputError, RequestsStopped
from generation_functions.format_health import FormatHealth
from generation_functions.prompts import check_placeholders, few_shot_outputs, load_prompt, resolve_prompt_path
from generation_functions.quality import QualityTally, tallied
from generation_functions.rag_rows import RagRows, RagRowSettings
from generation_functions.rejections import RejectionWatch, RequestShape
from generation_functions.report import SKIPPED, RunReport
from generation_functions.scheduling import REQUEST_PRIORITY, PathEstimator, pair_characters
from generation_functions.steps import (
    ANSWER_CHECK,
    CHUNK_FILTER,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    STEPS,
    ModelRole,
    active_steps,
)
from generation_functions.store import (
    CALLS_DIR,
    TEMPLATES_DIR,
    CallStore,
    atomic_write_json,
    output_lock,
    read_json,
    remove_stale_temporaries,
    write_json_if_changed,
)
from generation_step_class import BoundStep, GenerationStep, StepOutcome

T = TypeVar("T")
log = logging.getLogger("verustoolkit")

BUILTIN_PROMPTS = Path(__file__).resolve().parent / "prompts"
RESULTS_DIR = "chunk_results"
# The chunk keys of the latest run, in order: which chunk_results belong to it.
CHUNK_INDEX = "chunk_index.json"


def stop_sequences(config: Config) -> tuple[str, ...]:
    """What every request sends as stop sequences (none while SYSTEM.STOP is false)."""
    return tuple(config.system.STOP_SEQUENCES) if config.system.STOP else ()


def build_steps(config: Config, constraint_fields: Optional[dict[ModelRole, Optional[str]]] = None) -> dict[str, GenerationStep]:
    """Every row of the table of steps, with the sampling this config gives it.

    constraint_fields: per model role, the constrained-output field its server honours
    (constraint_probe.py); a step served by a role with one sends its output format in it."""
    stops = stop_sequences(config)
    built = {}
    for step in STEPS:
        sampling = step.sampling_for(config.sampling_overrides(step.key), stops)
        honoured = (constraint_fields or {}).get(step.model)
        if honoured is not None and step.output_format is not None:
            output_format = step.output_format
            constraint = constraint_for(
                honoured, step.key, output_format.grammar, output_format.schema, output_format.bounded_schema()
            )
            sampling = replace(sampling, constraint=constraint, max_tokens=room_for_format(sampling, constraint, output_format))
        built[step.prompt_name] = GenerationStep.from_table(step, sampling)
    return built


def warn_examples_outside_constraints(config: Config, prompts: dict, built: dict[str, GenerationStep]) -> None:
    """One warning per constrained step whose prompt shows an example its grammar or schema refuses."""
    steps = active_steps(config)
    kinds = {
        step.prompt_name: {built[step.prompt_name].sampling.constraint.kind}
        for step in steps
        if built[step.prompt_name].sampling.constraint is not None
    }
    examples = {name: few_shot_outputs(prompts[name]) for name in kinds}
    for line in run_warnings(misfits(steps, examples, kinds), examples):
        log.warning(line)


# Characters per token to assume when making room for a grammar's longest text: fewer than
# most tokenizers average on English, so the room is never short.
CHARS_PER_TOKEN = 3


def room_for_format(sampling, constraint, output_format) -> int:
    """max_tokens, raised where a grammar's longest text would not fit: a model that reasons to the
    grammar's bound must still have tokens left for the verdict the grammar then forces. A schema
    that carries the grammar's bounds holds reasoning to the same lines, with less around them."""
    if not is_bounded(constraint) or output_format.longest_chars is None:
        return sampling.max_tokens
    return max(sampling.max_tokens, -(-output_format.longest_chars // CHARS_PER_TOKEN))


def load_prompts(config: Config) -> dict[str, Any]:
    """Resolve and load every step's prompt once, before any request."""
    prompts = {}
    # A prompt folder made before a step existed (a seed folder as DEFAULT_PROMPTS) lacks its
    # file: the step then takes the prompt that ships with Verustoolkit.
    folders = [*config.prompt_dirs, BUILTIN_PROMPTS]
    for step in STEPS:
        prompt = load_prompt(step.prompt_name, config.system.COMPLETION_MODE, folders)
        source = str(resolve_prompt_path(step.prompt_name, config.system.COMPLETION_MODE, folders))
        check_placeholders(step.prompt_name, prompt, source, step.provides)
        prompts[step.prompt_name] = prompt
    return prompts


# ---------------------------------------------------------------- one chunk


@dataclass
class RunContext:
    config: Config
    steps: dict[str, BoundStep]
    report: RunReport
    output_dir: Path
    progress: "ProgressSink"
    paths: PathEstimator
    corpus: "CorpusSearch"
    constraints: Any = None  # the ConstraintChoice the run made (constraint_probe.py)


@dataclass(frozen=True)
class Vote:
    decision: Optional[bool]  # None: a tie
    yes: int
    no: int
    failures: tuple[str, ...] = ()
    rejections: tuple[Any, ...] = ()  # the parsed values of the votes against


def _voted_yes(outcome: StepOutcome) -> bool:
    return outcome.value is True


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """asyncio.gather that lets every request finish before passing on a failure.

    Plain gather raises the first error at once and leaves the siblings running
    on their own. The run would then stop, and close its connections under
    requests still in flight: answers already paid for would be lost (a spend
    cap, for one, lets requests in flight finish and stores them).
    """
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


async def majority_vote(
    step: BoundStep, values: dict[str, str], total: int, slot: str, voted_yes: Callable[[StepOutcome], bool] = _voted_yes
) -> Vote:
    """Up to `total` votes; the majority decides and ties are tossed.

    Votes are asked in parallel, but only as many as could still decide the
    outcome: with 3 votes, 2 are asked first and the third only on a split.
    `voted_yes` reads one outcome; by default a vote whose output never parses
    counts against the pair.
    """
    needed = total // 2 + 1
    yes = no = cast = 0
    failures: list[str] = []
    rejections: list[Any] = []
    while yes < needed and no < needed and cast < total:
        batch = min(total - cast, needed - max(yes, no))
        outcomes = await gather_all(step.run(values, f"{slot}/vote{cast + i}") for i in range(batch))
        cast += batch
        for outcome in outcomes:
            if voted_yes(outcome):
                yes += 1
            else:
                no += 1
                if not outcome.ok:
                    failures.append(outcome.reason)
                else:
                    rejections.append(outcome.value)
    decision = True if yes >= needed else False if no >= needed else None
    return Vote(decision, yes, no, tuple(failures), tuple(rejections))


def _vote_reason(vote: Vote, negative: str) -> str:
    if vote.decision is None:
        return "tie"
    if vote.failures and len(vote.failures) >= vote.no:
        return "check failed (no usable verdict)"
    return negative


async def vet_pair(ctx: RunContext, chunk: Chunk, pair: tuple[str, str], number: int, size: int = 0) -> dict:
    """Checks then repair for one pair; returns its fate as a record.

    size: the characters of all the chunk's pairs, which the scheduler uses to
    foresee how long the chunk's conversation will take."""
    question, answer = pair
    values = {"text": chunk.text, "textdetails": chunk.textdetails, "question": question, "answer": answer}
    total = ctx.config.system.DOUBLE_CHECK_COUNTER
    slot = f"pair{number}"
    record: dict[str, Any] = {"question": question, "answer": answer}

    if not ctx.config.skip.QUESTION_CHECK:
        REQUEST_PRIORITY.set(ctx.paths.priority(QUESTION_CHECK, size))
        vote = await majority_vote(ctx.steps[QUESTION_CHECK], values, total, slot)
        record["question_votes"] = [vote.yes, vote.no]
        if not vote.decision:
            return _tossed(ctx, chunk, record, "question_check", _vote_reason(vote, "voted irrelevant"), vote)
        ctx.report.keep("question_check", chunk.source)

    if ctx.config.skip.ANSWER_CHECK:
        _passed_unasked(ctx, chunk, "answer_check")
    else:
        REQUEST_PRIORITY.set(ctx.paths.priority(ANSWER_CHECK, size))
        vote = await majority_vote(ctx.steps[ANSWER_CHECK], values, total, slot)
        record["answer_votes"] = [vote.yes, vote.no]
        if not vote.decision:
            return _tossed(ctx, chunk, record, "answer_check", _vote_reason(vote, "voted inaccurate"), vote)
        if parsers.is_unknown_answer(answer):
            elsewhere = await answered_elsewhere(ctx, chunk, values, slot)
            if elsewhere:
                record["answered_in"] = elsewhere
                return _tossed(ctx, chunk, record, "answer_check", "says unknown, but another chunk answers it", None)
        ctx.report.keep("answer_check", chunk.source)

    if ctx.config.skip.CONTEXT_REPAIR:
        _passed_unasked(ctx, chunk, "context_repair")
        record["kept"] = True
        return record
    REQUEST_PRIORITY.set(ctx.paths.priority(CONTEXT_REPAIR, size))
    outcome = await ctx.steps[CONTEXT_REPAIR].run(values, slot)
    if not outcome.ok:
        return _tossed(ctx, chunk, record, "context_repair", "check failed (no usable judgment)", None, outcome)
    verdict, reworded = outcome.value
    record["repair"] = verdict
    if verdict == "fail":
        return _tossed(ctx, chunk, record, "context_repair", "cannot stand alone", None, outcome)
    if verdict == "reword":
        record["before_repair"] = [record["question"], record["answer"]]  # what the checks saw
        record["question"], record["answer"] = reworded
        ctx.report.note("context_repair", "reworded")
    ctx.report.keep("context_repair", chunk.source)
    record["kept"] = True
    return record


def _passed_unasked(ctx: RunContext, chunk: Chunk, stage: str) -> None:
    """A stage that SKIP turned off passes every pair on; the report says it was not asked."""
    ctx.report.keep(stage, chunk.source)
    ctx.report.note(stage, SKIPPED)


# How many other chunks a "not known" answer is checked against.
ELSEWHERE_CANDIDATES = 3


async def answered_elsewhere(ctx: RunContext, chunk: Chunk, values: dict[str, str], slot: str) -> str:
    """For an answer that says the detail is not known: the first other chunk of the corpus
    that the question check finds able to answer the question ("file, chunk n"), or "".
    Negative data must not teach the model to deny what the documents do say."""
    index = await ctx.corpus.open()
    hits = index.search(values["question"], ELSEWHERE_CANDIDATES, [chunk.key])
    for number, hit in enumerate(hits):
        other = {**values, "text": hit.text, "textdetails": hit.label}
        vote = await majority_vote(ctx.steps[QUESTION_CHECK], other, ctx.config.system.DOUBLE_CHECK_COUNTER, f"{slot}/elsewhere{number}")
        if vote.decision:
            return hit.label
    return ""


class CorpusSearch:
    """The run's search index over its documents (the one chat.py uses), built on first use."""

    def __init__(self, config: Config):
        self.config = config
        self._index: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> Any:
        async with self._lock:
            if self._index is None:
                from retrieval.search import update_index

                self._index, _ = await asyncio.to_thread(update_index, self.config, "input", pipeline_index_path(self.config))
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None


def pipeline_index_path(config: Config) -> Path:
    """The index of the run's documents: chat.py's own when that one indexes PATH.INPUT too."""
    if config.retrieval.SOURCE == "input":
        return config.retrieval_index_path
    return config.output_dir / "retrieval_input.sqlite"


def _tossed(
    ctx: RunContext,
    chunk: Chunk,
    record: dict,
    stage: str,
    reason: str,
    vote: Optional[Vote],
    outcome: Optional[StepOutcome] = None,
) -> dict:
    ctx.report.toss(stage, chunk.source, reason)
    record.update(kept=False, tossed_at=stage, reason=reason)
    if vote is not None and vote.failures:
        record["failures"] = list(vote.failures)
    if outcome is not None:
        record["raw_output"] = outcome.raw_output
        if outcome.reason:
            record["failures"] = [outcome.reason]
    return record


async def write_conversation(ctx: RunContext, chunk: Chunk, pairs: list[tuple[str, str]]) -> dict:
    """One conversation from the chunk's surviving pairs, checked in code against them."""
    values = {
        "text": chunk.text,
        "textdetails": chunk.textdetails,
        "question_answer_list": parsers.format_question_answer_list(pairs),
    }
    outcome = await ctx.steps[CONVERSATION].run(values, "conversation", check=lambda turns: check_conversation(turns, pairs))
    if outcome.ok:
        return {"turns": [list(turn) for turn in outcome.value]}
    if outcome.rejected:
        reason = outcome.reason
    elif outcome.reason.startswith(CUT_OFF):
        reason = CUT_OFF  # every try was cut short: a conversation cut off is never kept
    else:
        reason = "check failed (no usable conversation)"
    return {"turns": None, "reason": reason, "raw_output": outcome.raw_output}


def _suitable(outcome: StepOutcome) -> bool:
    # A filter vote that never parses keeps the chunk: losing a chunk to a broken
    # filter costs more than asking about one that had little to offer.
    return not outcome.ok or outcome.value[0]


async def screen_chunk(ctx: RunContext, chunk: Chunk) -> Optional[dict]:
    """None when the chunk goes on to question generation; else why the filter skipped it."""
    if ctx.config.skip.CHUNK_FILTER:
        return None
    values = {"text": chunk.text, "textdetails": chunk.textdetails}
    REQUEST_PRIORITY.set(ctx.paths.priority(CHUNK_FILTER))
    vote = await majority_vote(ctx.steps[CHUNK_FILTER], values, ctx.config.system.DOUBLE_CHECK_COUNTER, "filter", _suitable)
    if vote.decision is not False:  # suitable, or a tie: the chunk is kept
        ctx.report.keep("chunk_filter", chunk.source)
        return None
    kinds = Counter(kind for _, kind in vote.rejections).most_common(1)
    reason = kinds[0][0] if kinds else "unsuitable"
    ctx.report.toss("chunk_filter", chunk.source, reason)
    return {"stage": "chunk_filter", "reason": reason, "votes": [vote.yes, vote.no]}


async def process_chunk(ctx: RunContext, chunk: Chunk) -> dict:
    values = {"text": chunk.text, "textdetails": chunk.textdetails}
    screened_out = await screen_chunk(ctx, chunk)
    result: dict[str, Any] = {
        "key": chunk.key,
        "source": chunk.source,
        "chunk_index": chunk.index,
        "chunk": chunk.text,
        "raw_pairs": [],
        "vetted": [],
        "pairs": [],
        "conversation": None,
    }
    if screened_out is not None:
        result["filtered"] = screened_out
        ctx.progress.advance("chunks")
        return _save_result(ctx, result)
    REQUEST_PRIORITY.set(ctx.paths.priority(QUESTION_GENERATION))
    outcome = await ctx.steps[QUESTION_GENERATION].run(values, "questions")
    if not outcome.ok:
        ctx.report.toss("question_generation", chunk.source, "no usable questions")
        result["failure"] = {"stage": "question_generation", "reason": outcome.reason, "raw_output": outcome.raw_output}
        ctx.progress.advance("chunks")
        return _save_result(ctx, result)
    raw_pairs = outcome.value
    if not raw_pairs:  # the model answered NO QUESTIONS: a result, not a failure
        ctx.report.toss("question_generation", chunk.source, "no questions (nothing to ask about)")
        ctx.progress.advance("chunks")
        return _save_result(ctx, result)
    result["raw_pairs"] = [list(p) for p in raw_pairs]
    if outcome.cut_off:  # the pairs before the cut are whole; the one being written is not
        ctx.report.toss("question_generation", chunk.source, CUT_PAIR_DROPPED)
        result["cut_off"] = {"stage": "question_generation", "reason": CUT_PAIR_DROPPED, "raw_output": outcome.raw_output}
    kinds = parsers.parse_question_kinds(outcome.raw_output)
    ctx.report.keep("question_generation", chunk.source, len(raw_pairs))
    ctx.progress.grow("pairs", len(raw_pairs))
    ctx.progress.advance("chunks")

    size = pair_characters(raw_pairs)

    async def vet_and_tick(pair: tuple[str, str], number: int) -> dict:
        record = await vet_pair(ctx, chunk, pair, number, size)
        if kinds[number] is not None:
            record["kind"] = kinds[number]
        ctx.progress.advance("pairs")
        return record

    records = await gather_all(vet_and_tick(pair, n) for n, pair in enumerate(raw_pairs))
    result["vetted"] = list(records)
    kept = [r for r in records if r.get("kept")]
    survivors = [(r["question"], r["answer"]) for r in kept]
    result["pairs"] = [list(p) for p in survivors]
    if any("kind" in r for r in kept):
        result["pair_kinds"] = [r.get("kind") for r in kept]
    if survivors:
        ctx.progress.grow("conversations", 1)
        REQUEST_PRIORITY.set(ctx.paths.priority(CONVERSATION, pair_characters(survivors)))
        conversation = await write_conversation(ctx, chunk, survivors)
        if conversation["turns"]:
            result["conversation"] = conversation["turns"]
            ctx.report.keep("conversation", chunk.source)
        else:
            ctx.report.toss("conversation", chunk.source, _conversation_category(conversation["reason"]))
            result["failure"] = {"stage": "conversation", "reason": conversation["reason"], "raw_output": conversation["raw_output"]}
        ctx.progress.advance("conversations")
    return _save_result(ctx, result)


CUT_OFF = "output cut off at max_tokens"
CUT_PAIR_DROPPED = f"unfinished pair dropped ({CUT_OFF})"


def _conversation_category(reason: str) -> str:
    if reason.startswith("check failed") or reason == CUT_OFF:
        return reason
    return "failed the conversation check"


def _save_result(ctx: RunContext, result: dict) -> dict:
    write_json_if_changed(ctx.output_dir / RESULTS_DIR / f"{result['key']}.json", result)
    return result


# ---------------------------------------------------------------- the run


class ProgressSink:
    """Where progress goes; processing.py shows tqdm bars, app.py a live status."""

    def grow(self, stage: str, amount: int) -> None: ...

    def advance(self, stage: str, amount: int = 1) -> None: ...

    def close(self) -> None: ...


@dataclass
class ChunkIndex:
    """What the final assembly needs of each chunk: small, so chunks can stream."""

    keys: list[str] = field(default_factory=list)


def stream_chunks(
    config: Config, report: RunReport, pretraining: PretrainingWriter, index: ChunkIndex
) -> Iterator[Optional[Chunk]]:
    """Documents are read one at a time; each feeds the pretraining corpus and its chunks.

    With USE_SUBSET the remaining documents still go into the pretraining
    corpus, without being chunked; None is yielded after each of them so the
    caller can let requests run in between.
    """

    def documents() -> Iterator[Document]:
        for item in iter_documents(config.input_dir):
            if isinstance(item, SkippedFile):  # iter_documents has logged it
                report.skipped_files.append({"path": item.path, "reason": item.reason})
                continue
            report.documents += 1
            pretraining.add(item.text)
            yield item

    limit = config.system.SUBSET_SIZE if config.system.USE_SUBSET else None
    readable = documents()
    def count_duplicate(chunk: Chunk) -> None:
        report.duplicate_chunks += 1

    for chunk in chunk_documents(readable, config.system.CHUNK_SIZE, on_duplicate=count_duplicate):
        index.keys.append(chunk.key)
        report.keep("chunks", chunk.source)
        yield chunk
        if limit is not None and len(index.keys) >= limit:
            break
    for _ in readable:
        yield None


async def _run_chunks(ctx: RunContext, chunks: Iterator[Optional[Chunk]], window: int) -> None:
    """Keep up to `window` chunks in progress.

    A failure that must stop the run cancels the rest, except a spend cap:
    then the requests already in flight are let finish and are stored, so
    nothing that was paid for is lost.
    """
    pending: set[asyncio.Task] = set()
    try:
        for chunk in chunks:
            # Reading and chunking run on this thread: let requests go out and
            # answers come in between two chunks, not only once the window fills.
            await asyncio.sleep(0)
            if chunk is None:
                continue
            ctx.progress.grow("chunks", 1)
            pending.add(asyncio.create_task(process_chunk(ctx, chunk)))
            if len(pending) >= window:
                pending = await _reap(pending)
        while pending:
            pending = await _reap(pending)
    except BudgetExceeded:
        await asyncio.gather(*pending, return_exceptions=True)
        pending = set()
        raise
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def _reap(pending: set[asyncio.Task]) -> set[asyncio.Task]:
    """Wait for at least one chunk to finish; re-raise the first failure.

    On a failure the caller still holds the old set, finished tasks included;
    gathering a finished task costs nothing.
    """
    done, still_pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    failures = [task.exception() for task in done if not task.cancelled() and task.exception() is not None]
    if failures:
        first = failures[0]
        # A request refused because the run is stopping reports why it stops.
        raise first.cause if isinstance(first, RequestsStopped) else first
    return still_pending


def iter_results(output_dir: Path, keys: list[str]) -> Iterator[dict]:
    seen = set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        result = read_json(output_dir / RESULTS_DIR / f"{key}.json")
        if result is not None:
            yield result


@dataclass
class Engines:
    """The run's engines: one per distinct model, sharing one limiter and budget."""

    logical: Any
    large: Any
    stats: RequestStats
    limiter: RequestLimiter
    budget: Any

    def serving(self, role: ModelRole) -> Any:
        """The engine of the model a step's table row names."""
        return self.large if role is ModelRole.LARGE else self.logical

    @classmethod
    def build(cls, config: Config) -> "Engines":
        stats = RequestStats()
        limiter = RequestLimiter(config.system.CONCURRENCY_LIMIT)
        budget = make_budget(config)
        logical = make_engine(config, config.api.LOGICAL_MODEL, limiter, stats, budget)
        large = logical
        if config.api.LARGE_LOGICAL_MODEL != config.api.LOGICAL_MODEL:
            large = make_engine(config, config.api.LARGE_LOGICAL_MODEL, limiter, stats, budget)
        return cls(logical, large, stats, limiter, budget)

    async def close(self) -> None:
        await self.logical.close()
        if self.large is not self.logical:
            await self.large.close()


def written_folders(output_dir: Path) -> list[Path]:
    """Every folder a run writes temporary files into (store.open_temporary, beside their target)."""
    templates = [output_dir / CALLS_DIR / step.prompt_name / TEMPLATES_DIR for step in STEPS]
    return [output_dir, output_dir / RESULTS_DIR, *templates]


async def run_pipeline(config: Config, progress: Optional[ProgressSink] = None, prompts: Optional[dict] = None) -> dict:
    """Run the whole pipeline; returns the run report (also written to OUTPUT).

    If the run stops early (an outage, a spend cap, a cancel), a report saying so
    is still written, and the exception goes on to the caller.
    """
    started = time.monotonic()
    progress = progress or ProgressSink()
    prompts = prompts if prompts is not None else load_prompts(config)
    check_something_readable(config.input_dir)
    output_dir = config.output_dir
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # nothing was made: a config mistake, not a run to resume
        raise ConfigError(f"PATH.OUTPUT {output_dir} cannot be created ({exc.strerror or exc})") from None
    with output_lock(output_dir):
        return await _run_locked(config, progress, prompts, started)


async def _run_locked(config: Config, progress: ProgressSink, prompts: dict, started: float) -> dict:
    output_dir = config.output_dir
    remove_stale_temporaries(written_folders(output_dir))
    format_health = FormatHealth(output_dir)  # warns while the run runs; the report holds its figures
    report = RunReport(format_health)
    constraints = await choose_constraints(config)
    record_choice(output_dir, constraints)
    engines = Engines.build(config)
    store = CallStore(output_dir)
    chain = [step.prompt_name for step in active_steps(config)]
    paths = PathEstimator(chain, writer=QUESTION_GENERATION, conversation=CONVERSATION)
    built = build_steps(config, constraints.fields_by_role(config))
    warn_examples_outside_constraints(config, prompts, built)
    steps = {
        step.prompt_name: BoundStep(
            built[step.prompt_name],
            prompts[step.prompt_name],
            engines.serving(step.model),
            store,
            paths.observe,
            rejection_watch(config, step),
            format_health,
        )
        for step in STEPS
    }
    ctx = RunContext(config, steps, report, output_dir, progress, paths, CorpusSearch(config), constraints)
    index = ChunkIndex()
    pretraining = PretrainingWriter(output_dir)
    try:
        window = max(8, 2 * config.system.CONCURRENCY_LIMIT)
        await _run_chunks(ctx, stream_chunks(config, report, pretraining, index), window)
        for bound in steps.values():
            if bound.rejections is not None:
                bound.rejections.check_finished()  # a step refused every time never worked: exit 2
    except BaseException as exc:
        pretraining.close(ok=False)
        atomic_write_json(output_dir / CHUNK_INDEX, {"keys": index.keys})
        _write_report(ctx, engines, store, started, status=f"stopped: {_describe_stop(exc)}")
        raise
    finally:
        ctx.corpus.close()  # reopened (and brought up to date) for the RAG rows
        progress.close()
        await engines.close()
        store.close()
    pretraining.close(ok=True)
    atomic_write_json(output_dir / CHUNK_INDEX, {"keys": index.keys})
    if not index.keys:
        raise InputError(f"no text to work on in {config.input_dir} (every file was empty or unreadable)")
    quality = QualityTally()
    try:
        counts = write_datasets(
            output_dir,
            tallied(iter_results(output_dir, index.keys), quality),
            config.system.no_rag_prompts,
            config.system.rag_prompts,
            await rag_rows_for(config, ctx.corpus),
        )
    finally:
        ctx.corpus.close()
    return _write_report(ctx, engines, store, started, status="finished", outputs=counts, quality=quality.as_dict())


def rejection_watch(config: Config, step) -> RejectionWatch:
    """Watches one step's refusals, knowing which settings make its requests."""
    shape = RequestShape(
        model=getattr(config.api, step.model.value),
        model_setting=f"API.{step.model.value}",
        sampling_section=f"SAMPLING.{step.key.upper()}",
    )
    return RejectionWatch(step.key, shape)


async def rag_rows_for(config: Config, corpus: CorpusSearch) -> RagRows:
    """RAG rows whose context is what retrieval returns: the lexical search index over the run's
    documents, so every rerun draws the same neighbours."""
    settings = RagRowSettings.from_config(config.system)
    if not settings.searches:
        return RagRows(settings, None)
    index = await corpus.open()
    return RagRows(settings, lambda question, k, exclude: [hit.text for hit in index.search(question, k, exclude)])


def _constrained_output(choice, engines: Engines) -> dict:
    """The setting, the field each model's requests used, and any refusal that turned them off mid-run."""
    data = choice.as_dict()
    refused = {
        engine.model: engine.constraints_refused
        for engine in {id(e): e for e in (engines.logical, engines.large)}.values()
        if engine.constraints_refused
    }
    if refused:
        data["refused_mid_run"] = refused
    return data


def _describe_stop(exc: BaseException) -> str:
    if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
        return "cancelled"
    return str(exc) or type(exc).__name__


def _write_report(
    ctx: RunContext, engines: Engines, store: CallStore, started: float, status: str, outputs=None, quality=None
) -> dict:
    data = {"status": status, **ctx.report.as_dict()}
    data["step_failures"] = {
        name: dict(sorted(step.failures.items())) for name, step in ctx.steps.items() if step.failures
    }
    data["requests"] = {
        "made": engines.stats.requests,
        "reused": store.hits,
        **{k: v for k, v in engines.stats.as_dict().items() if k != "requests"},
        "peak_in_flight": engines.limiter.peak,
        "mean_in_flight": round(engines.limiter.mean_in_flight, 2),
        "concurrency_limit": engines.limiter.limit,
        # Lowered while the server was overloaded (timeouts, 429, 503); the limit when it never was.
        "lowest_in_flight_allowed": engines.limiter.lowest,
    }
    data["budget"] = engines.budget.as_dict()
    if ctx.constraints is not None:
        data["constrained_output"] = _constrained_output(ctx.constraints, engines)
    data["outputs"] = outputs or {}
    if quality is not None:
        data["quality"] = quality
    data["output_dir"] = str(ctx.output_dir)
    data["wall_seconds"] = round(time.monotonic() - started, 3)
    atomic_write_json(ctx.output_dir / RUN_REPORT, data, durable=True)
    return data
