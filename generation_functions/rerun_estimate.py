"""What a rerun over the same OUTPUT would reuse, for `--check`'s estimate and the WebUI's.

Each chunk is replayed through the pipeline's own chunk function against the
stored calls, with an engine that never sends a request: the replay goes as
far as the stored answers lead, and stops at the first call a real run would
have to make. So a finished OUTPUT estimates no new request, and an edited
prompt, model or sampling setting (which changes the calls' keys) estimates the
work it really redoes. The call logs are opened read-only, and the chunk
records the replay writes go to a scratch folder, so this is safe while a run
is going on the same OUTPUT.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from generation_functions.chunking import Chunk
from generation_functions.config import Config
from generation_functions.store import CALLS_DIR, CallStore


class WouldRequest(Exception):
    """The replay reached a call that is not stored: a real run would send it."""


class _NoRequests:
    """An engine that answers nothing: every call it is asked for is a call to make."""

    def __init__(self, model: str):
        self.model = model

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise WouldRequest

    async def close(self) -> None:
        pass


class _StoredCorpus:
    """The run's search index as the last run left it (searched, never brought up to date):
    a replay must find the same other chunks the run checked; without an index, it would request."""

    def __init__(self, config: Config):
        from control_flow_functions import pipeline_index_path

        self.path = pipeline_index_path(config)
        self._index: Any = None

    async def open(self) -> Any:
        if self._index is None:
            if not self.path.is_file():
                raise WouldRequest
            from retrieval.index import RetrievalIndex

            self._index = RetrievalIndex(self.path)
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None


@dataclass(frozen=True)
class ChunkReuse:
    stored_calls: int  # calls the replay found stored, and a rerun would reuse
    complete: bool  # every call the chunk needs is stored: a rerun asks nothing for it


class ChunkReplayer:
    """Replays chunks one at a time (the corpus is never held in memory at once)."""

    def __init__(self, config: Config, prompts: dict):
        from control_flow_functions import ProgressSink, RunContext, build_steps
        from generation_functions.report import RunReport
        from generation_functions.scheduling import PathEstimator
        from generation_functions.steps import CONVERSATION, QUESTION_GENERATION, STEPS, ModelRole, active_steps
        from generation_step_class import BoundStep

        self.active = (config.output_dir / CALLS_DIR).is_dir()
        self._scratch = tempfile.TemporaryDirectory(prefix="verustoolkit-replay-")
        self.store = CallStore(config.output_dir, read_only=True)
        engines = {ModelRole.LOGICAL: _NoRequests(config.api.LOGICAL_MODEL), ModelRole.LARGE: _NoRequests(config.api.LARGE_LOGICAL_MODEL)}
        from generation_functions.constraint_probe import recorded_choice

        # The run's sampling, SAMPLING overrides and the constraints it chose included: they are in the call keys.
        built = build_steps(config, recorded_choice(config.output_dir).fields_by_role(config))
        steps = {
            step.prompt_name: BoundStep(built[step.prompt_name], prompts[step.prompt_name], engines[step.model], self.store)
            for step in STEPS
        }
        chain = [step.prompt_name for step in active_steps(config)]
        paths = PathEstimator(chain, writer=QUESTION_GENERATION, conversation=CONVERSATION)
        self._ctx = RunContext(config, steps, RunReport(), Path(self._scratch.name), ProgressSink(), paths, _StoredCorpus(config))

    async def replay(self, chunk: Chunk) -> ChunkReuse:
        from control_flow_functions import process_chunk

        if not self.active:
            return ChunkReuse(0, False)
        before = self.store.hits
        try:
            await process_chunk(self._ctx, chunk)
        except WouldRequest:
            return ChunkReuse(self.store.hits - before, False)
        return ChunkReuse(self.store.hits - before, True)

    def close(self) -> None:
        self.store.close()
        self._ctx.corpus.close()
        self._scratch.cleanup()


async def replay_chunks(config: Config, prompts: dict, chunks: Sequence[Chunk]) -> list[ChunkReuse]:
    replayer = ChunkReplayer(config, prompts)
    try:
        return [await replayer.replay(chunk) for chunk in chunks]
    finally:
        replayer.close()
