"""Ask each candidate each question under each condition, and have the judge grade the answer.

Conditions, each in the training format exactly:
- closed_book: FINAL_ASSISTANT_PROMPT_NO_RAG as the system prompt: did the model learn it?
- rag: FINAL_ASSISTANT_PROMPT_RAG with {data} filled by the top-k retrieved chunks.
- oracle: the same prompt with the item's own source chunk: can the model use the right text?
Comparing them tells "the model did not learn it" from "retrieval did not find it".

Every request goes through the pipeline's engine and call store, so a rerun asks nothing twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from control_flow_functions import gather_all
from evaluation.eval_set import EvalItem
from generation_functions.config import Config
from generation_functions.datasets import join_context, rag_system_prompt
from generation_functions.errors import ParseError
from generation_functions.output_processors import format_question_answer_list
from generation_step_class import BoundStep, GenerationStep
from generation_functions.steps import Sampling

CONDITIONS = ("closed_book", "rag", "oracle")
# The candidate sees exactly a training conversation's start: the system prompt, then the question.
# ({text} carries the whole system prompt: only the five placeholders exist, and a filled prompt
# is never scanned again, so braces in it stay as they are.)
CANDIDATE_PROMPT = [{"role": "system", "content": "{text}"}, {"role": "user", "content": "{question}"}]
NO_CHUNK = "(no source chunk was given for this question)"

# (question, k) -> [(source label, chunk text)], best first.
Retriever = Callable[[str, int], Sequence[tuple[str, str]]]


def the_answer(text: str) -> str:
    """A candidate's answer is its whole reply; an empty one is asked again, then counted."""
    if not text.strip():
        raise ParseError("empty answer")
    return text.strip()


def candidate_step(name: str, max_tokens: int) -> GenerationStep:
    # Greedy decoding: an evaluation should measure the model, not the dice.
    return GenerationStep(f"candidate_{name}", the_answer, Sampling(0.0, 1.0, max_tokens), retries=1)


@dataclass
class Context:
    system: Optional[str]  # None: the condition does not apply to this item (oracle without a chunk)
    sources: list[str] = field(default_factory=list)


def context_for(config: Config, condition: str, item: EvalItem, retrieve: Optional[Retriever]) -> Context:
    rag_prompt = config.system.FINAL_ASSISTANT_PROMPT_RAG
    if condition == "closed_book":
        return Context(config.system.FINAL_ASSISTANT_PROMPT_NO_RAG)
    if condition == "oracle":
        if item.chunk is None:
            return Context(None)
        return Context(rag_system_prompt(rag_prompt, item.chunk), [item.source or "(its source chunk)"])
    assert retrieve is not None, "the rag condition needs a retriever"
    passages = list(retrieve(item.question, config.evaluation.TOP_K))
    return Context(rag_system_prompt(rag_prompt, join_context([text for _, text in passages])), [s for s, _ in passages])


@dataclass
class Verdict:
    grade: Optional[str]  # None: no grade won a majority, or no vote parsed
    reason: str
    votes: dict[str, int]
    failures: int


async def judge(step: BoundStep, values: dict[str, str], votes: int, slot: str) -> Verdict:
    """Majority of `votes` judgments, asked only as long as a majority is still open.
    A judgment that never parses is counted as a failure, never guessed."""
    needed = votes // 2 + 1
    counts: Counter = Counter()
    reasons: dict[str, str] = {}
    cast = failures = 0
    while cast < votes:
        best = max(counts.values(), default=0)
        if best >= needed or best + (votes - cast) < needed:
            break
        batch = min(votes - cast, needed - best)
        outcomes = await gather_all(step.run(values, f"{slot}/vote{cast + i}") for i in range(batch))
        cast += batch
        for outcome in outcomes:
            if not outcome.ok:
                failures += 1
                continue
            grade, reason = outcome.value
            counts[grade] += 1
            reasons.setdefault(grade, reason)
    top = counts.most_common(1)
    grade = top[0][0] if top and top[0][1] >= needed else None
    return Verdict(grade, reasons.get(grade, "") if grade else "", dict(counts), failures)


async def ask_and_judge(
    config: Config,
    item: EvalItem,
    candidate: str,
    answerer: BoundStep,
    judge_step: BoundStep,
    condition: str,
    retrieve: Optional[Retriever],
) -> Optional[dict]:
    """One row of eval_answers.jsonl, or None when the condition does not apply to the item."""
    context = context_for(config, condition, item, retrieve)
    if context.system is None:
        return None
    row = {"id": item.id, "question": item.question, "reference": item.reference, "source": item.source,
           "candidate": candidate, "condition": condition, "context_sources": context.sources}
    outcome = await answerer.run({"text": context.system, "question": item.question}, f"{item.id}/{condition}")
    if not outcome.ok:
        return {**row, "answer": None, "grade": None, "reason": f"no answer: {outcome.reason}", "votes": {}, "failures": 0}
    values = {
        "text": item.chunk or NO_CHUNK,
        "textdetails": item.source,
        "question": item.question,
        "answer": item.reference,
        "question_answer_list": format_question_answer_list([(item.question, outcome.value)]),
    }
    verdict = await judge(judge_step, values, config.evaluation.VOTES, f"{item.id}/{candidate}/{condition}")
    return {**row, "answer": outcome.value, "grade": verdict.grade, "reason": verdict.reason,
            "votes": verdict.votes, "failures": verdict.failures}
