"""Which constrained-output field does the server honour? Asked once per model.

A server that does not know a field mostly ignores it and answers as if it were
not there; some refuse it (HTTP 400) and some fail (llama-cpp-python answers a
`response_format` of type json_schema with HTTP 500). Only a tiny constrained
request whose forced answer no model writes by chance tells them apart: each
candidate field of SYSTEM.CONSTRAINED_OUTPUT is tried in turn (grammars first),
and the first whose answer is the forced one is used. None honoured: the run
goes on unconstrained, with one warning.

The run records what it chose in OUTPUT/constraints.json: what a rerun would
reuse (generation_functions/rerun_estimate.py) depends on it, since a call's
constraint is part of its identity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Optional

from generation_functions.config import Config
from generation_functions.constraints import (
    OFF,
    PROBE_GRAMMAR,
    PROBE_NAME,
    PROBE_SCHEMA,
    ConstraintField,
    candidate_fields,
    constraint_for,
    probe_answer_honoured,
)
from generation_functions.steps import ModelRole, Sampling
from generation_functions.store import atomic_write_json, read_json

log = logging.getLogger("verustoolkit")

RECORD = "constraints.json"
PROBE_PROMPT = "Reply with a short code."
PROBE_MAX_TOKENS = 24


@dataclass
class ModelProbe:
    model: str
    field: Optional[str] = None  # the honoured field's name; None: none
    tried: list[str] = dataclass_field(default_factory=list)  # "grammar: ignored (answered 'Hello')", for --check and warnings

    def describe(self) -> str:
        chosen = f"uses {self.field!r}" if self.field else "no constrained output"
        return f"{self.model}: {chosen} ({'; '.join(self.tried) or 'not probed'})"


@dataclass
class ConstraintChoice:
    """What a run sends: per model, the honoured field (None: unconstrained)."""

    setting: str
    models: dict[str, ModelProbe] = dataclass_field(default_factory=dict)

    def field_for(self, model: str) -> Optional[str]:
        probe = self.models.get(model)
        return probe.field if probe else None

    def fields_by_role(self, config: Config) -> dict[ModelRole, Optional[str]]:
        return {role: self.field_for(getattr(config.api, role.value)) for role in ModelRole}

    def as_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "models": {name: probe.field for name, probe in self.models.items()}}


async def probe_model_constraints(config: Config, model: str) -> ModelProbe:
    """Try each candidate field for `model` on the first BASE_URL (replicas serve the same model)."""
    from engine_wrapper_class import make_backends

    result = ModelProbe(model)
    candidates = candidate_fields(config.system.CONSTRAINED_OUTPUT, config.system.MODE)
    if not candidates:
        return result
    timeout = min(config.system.REQUEST_TIMEOUT, 120.0)
    backend = make_backends(
        config.system.MODE, config.system.COMPLETION_MODE, config.base_urls[:1], config.api_key, model, timeout
    )[0]
    try:
        for candidate in candidates:
            verdict = await _try_field(backend, candidate, config.system.COMPLETION_MODE)
            result.tried.append(f"{candidate.name}: {verdict}")
            if verdict == "honoured":
                result.field = candidate.name
                break
    finally:
        await backend.close()
    return result


async def _try_field(backend: Any, candidate: ConstraintField, completion_mode: bool) -> str:
    """"honoured", or what the server did instead, in a few words."""
    constraint = constraint_for(candidate.name, PROBE_NAME, PROBE_GRAMMAR, PROBE_SCHEMA)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=PROBE_MAX_TOKENS, constraint=constraint)
    prompt = PROBE_PROMPT if completion_mode else [{"role": "user", "content": PROBE_PROMPT}]
    try:
        completion = await backend.call(prompt, sampling)
    except Exception as exc:  # refused, failed or garbled: in every case not a field to use
        return f"not taken ({_short(getattr(exc, 'reason', None) or str(exc) or type(exc).__name__)})"
    if probe_answer_honoured(candidate.kind, completion.text):
        return "honoured"
    return f"ignored (answered {_short(completion.text)!r})"


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


async def choose_constraints(config: Config) -> ConstraintChoice:
    """Probe each model the run asks (none when CONSTRAINED_OUTPUT is off); warn once per
    model that honours no field."""
    setting = config.system.CONSTRAINED_OUTPUT
    choice = ConstraintChoice(setting)
    if setting == OFF:
        return choice
    for model in dict.fromkeys((config.api.LOGICAL_MODEL, config.api.LARGE_LOGICAL_MODEL)):
        probe = await probe_model_constraints(config, model)
        choice.models[model] = probe
        if probe.field is None:
            log.warning(
                "SYSTEM.CONSTRAINED_OUTPUT is %s, but the server at %s constrains none of model %s's outputs "
                "(%s); the run goes on without constrained output, as with off",
                setting,
                config.base_urls[0],
                model,
                "; ".join(probe.tried),
            )
        else:
            log.info("constrained output for model %s: the %r field", model, probe.field)
    return choice


def record_choice(output_dir: Path, choice: ConstraintChoice) -> None:
    atomic_write_json(output_dir / RECORD, choice.as_dict())


def recorded_choice(output_dir: Path) -> ConstraintChoice:
    """The choice the last run in output_dir recorded (unconstrained when there is none)."""
    data = read_json(output_dir / RECORD)
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return ConstraintChoice(OFF)
    choice = ConstraintChoice(str(data.get("setting", OFF)))
    for model, chosen in data["models"].items():
        if isinstance(model, str) and (chosen is None or isinstance(chosen, str)):
            choice.models[model] = ModelProbe(model, chosen)
    return choice
