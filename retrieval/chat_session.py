"""Answer questions about the documents, in the exact format the model was trained on.

The prompt is the training data's format (generation_functions/datasets.py):
a system message, FINAL_ASSISTANT_PROMPT_RAG with `{data}` replaced by the
retrieved chunks (FINAL_ASSISTANT_PROMPT_NO_RAG when retrieval is off), then
the conversation as alternating user and assistant turns. With one retrieved
chunk the system message is character for character what a training row holds.

`ChatSession` keeps the history; chat.py, the WebUI's Chat tab and evaluation
build on it, or on `build_messages` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Optional, Sequence, Union

from generation_functions.config import SystemSection
from generation_functions.datasets import join_context, rag_system_prompt
from retrieval.chat_client import ChatClient, Messages
from retrieval.index import Hit
from retrieval.search import Retriever


def system_message(prompts: SystemSection, context: Optional[Sequence[str]]) -> str:
    """The RAG system prompt with {data} = the chunks, best first, as the RAG training rows join
    them (datasets.join_context); the no-RAG prompt when there is no chunk."""
    if not context:
        return prompts.FINAL_ASSISTANT_PROMPT_NO_RAG
    return rag_system_prompt(prompts.FINAL_ASSISTANT_PROMPT_RAG, join_context(context))


@dataclass(frozen=True)
class Exchange:
    """One finished question and answer, with the chunks the model was given."""

    question: str
    answer: str
    sources: tuple[Hit, ...] = ()


def build_messages(
    prompts: SystemSection, question: str, context: Optional[Sequence[str]] = None, history: Sequence[Exchange] = ()
) -> Messages:
    """System message, then the earlier turns alternating user/assistant, then the question."""
    messages = [{"role": "system", "content": system_message(prompts, context)}]
    for exchange in history:
        messages.append({"role": "user", "content": exchange.question})
        messages.append({"role": "assistant", "content": exchange.answer})
    messages.append({"role": "user", "content": question})
    return messages


# What ChatSession.ask yields: first the sources, then the answer piece by piece, then the whole exchange.
@dataclass(frozen=True)
class Sources:
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Piece:
    text: str


@dataclass(frozen=True)
class Answered:
    exchange: Exchange


ChatEvent = Union[Sources, Piece, Answered]


@dataclass
class ChatSession:
    """A conversation. With a retriever, each question gets the top-k chunks found for it
    (the earlier turns keep their text, not their chunks, as in the training data)."""

    client: ChatClient
    prompts: SystemSection
    retriever: Optional[Retriever] = None
    top_k: Optional[int] = None
    history: list[Exchange] = field(default_factory=list)

    async def ask(self, question: str) -> AsyncIterator[ChatEvent]:
        hits: tuple[Hit, ...] = ()
        if self.retriever is not None:
            hits = tuple(await self.retriever.search(question, self.top_k))
        yield Sources(hits)
        messages = build_messages(self.prompts, question, [hit.text for hit in hits], self.history)
        pieces = []
        async for piece in self.client.stream(messages):
            pieces.append(piece)
            yield Piece(piece)
        # Only a finished answer joins the history: a broken one would teach the next turn nothing.
        exchange = Exchange(question, "".join(pieces), hits)
        self.history.append(exchange)
        yield Answered(exchange)

    def reset(self) -> None:
        self.history.clear()
