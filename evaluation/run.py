"""One evaluation run: every candidate, every condition, every question; then the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

from control_flow_functions import BUILTIN_PROMPTS, gather_all
from engine_wrapper_class import RequestStats, make_budget, make_engine
from evaluation.asking import CANDIDATE_PROMPT, Retriever, ask_and_judge, candidate_step
from evaluation.candidates import Candidate, engine_for
from evaluation.eval_set import EvalItem
from evaluation.report import build_report, write_outputs
from generation_functions.concurrency import RequestLimiter
from generation_functions.config import Config
from generation_functions.prompts import check_placeholders, load_prompt, resolve_prompt_path
from generation_functions.steps import EVALUATION_STEPS, JUDGE
from generation_functions.store import CallStore, output_lock
from generation_step_class import BoundStep, GenerationStep


class Progress(Protocol):
    def grow(self, stage: str, amount: int) -> None: ...

    def advance(self, stage: str, amount: int = 1) -> None: ...

    def close(self) -> None: ...


def load_judge_prompt(config: Config):
    """The judge's prompt, with the same override fallback as the pipeline's steps."""
    folders = [*config.prompt_dirs, BUILTIN_PROMPTS]
    prompt = load_prompt(JUDGE, config.system.COMPLETION_MODE, folders)
    source = str(resolve_prompt_path(JUDGE, config.system.COMPLETION_MODE, folders))
    check_placeholders(JUDGE, prompt, source, EVALUATION_STEPS[0].provides)
    return prompt


def judge_model(config: Config) -> str:
    return config.evaluation.JUDGE_MODEL or config.api.LARGE_LOGICAL_MODEL


async def run_evaluation(
    config: Config,
    items: Sequence[EvalItem],
    candidates: Sequence[Candidate],
    conditions: Sequence[str],
    eval_set: Path,
    retrieve: Optional[Retriever] = None,
    progress: Optional[Progress] = None,
) -> dict:
    """Ask, judge, write the outputs into EVALUATION.OUTPUT; returns the report."""
    output_dir = config.evaluation_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(output_dir):
        return await _run_locked(config, items, candidates, conditions, eval_set, retrieve, progress)


async def _run_locked(config, items, candidates, conditions, eval_set, retrieve, progress) -> dict:
    started = time.monotonic()
    stats, limiter, budget = RequestStats(), RequestLimiter(config.system.CONCURRENCY_LIMIT), make_budget(config)
    store = CallStore(config.evaluation_dir)
    judge_engine = make_engine(config, judge_model(config), limiter, stats, budget)
    engines = {c.name: engine_for(c, config, limiter, stats, budget) for c in candidates}
    spec = EVALUATION_STEPS[0]
    sampling = spec.sampling_for(None, ())
    judge_step = BoundStep(GenerationStep.from_table(spec, sampling), load_judge_prompt(config), judge_engine, store)
    answerers = {
        name: BoundStep(candidate_step(name, config.evaluation.MAX_TOKENS), CANDIDATE_PROMPT, engine, store)
        for name, engine in engines.items()
    }
    if progress is not None:
        progress.grow("answers", len(items) * len(candidates) * len(conditions))

    async def one(item: EvalItem, name: str, condition: str) -> Optional[dict]:
        row = await ask_and_judge(config, item, name, answerers[name], judge_step, condition, retrieve)
        if progress is not None:
            progress.advance("answers")
        return row

    try:
        rows = await gather_all(one(item, c.name, condition) for item in items for c in candidates for condition in conditions)
    finally:
        if progress is not None:
            progress.close()
        for engine in {judge_engine, *engines.values()}:
            await engine.close()
        store.close()
    rows = [row for row in rows if row is not None]
    meta = {
        "eval_set": str(eval_set),
        "questions": len(items),
        "candidates": [{"name": c.name, "model": c.model, "base_url": c.base_url} for c in candidates],
        "conditions": list(conditions),
        "judge": judge_model(config),
        "votes": config.evaluation.VOTES,
        "requests": {"made": stats.requests, "reused": store.hits, "prompt_tokens": stats.prompt_tokens,
                     "completion_tokens": stats.completion_tokens},
        "wall_seconds": round(time.monotonic() - started, 3),
    }
    report = build_report(rows, [c.name for c in candidates], conditions, meta)
    write_outputs(config.evaluation_dir, rows, report)
    return report
