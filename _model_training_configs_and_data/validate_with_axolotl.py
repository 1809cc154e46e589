"""Check an axolotl config with axolotl's own schema, without a GPU or a download.

    python _model_training_configs_and_data/validate_with_axolotl.py [CONFIG]

Run it with the Python of an environment where axolotl is installed (it is not
a Verustoolkit dependency). It applies `axolotl.utils.config.validate_config`,
the pydantic schema and validators `axolotl train` runs on every config, with
the capabilities of one bf16 GPU (compute capability 9.0, i.e. an H100), so the
GPU-dependent checks (bf16, flash attention, packing) run as they would there.
It stops short of what needs the model: loading the tokenizer and the model
config from the Hugging Face Hub.

Then, where galore_torch is installed, it builds the GaLore optimizer exactly as
transformers' Trainer does for a tiny random model of the Llama architecture and
takes one step, to show the optimizer settings and target modules fit together.

Prints "valid: ..." and exits 0, or prints the complaint and exits 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")  # no telemetry from a check
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_CONFIG = Path(__file__).resolve().parent / "verus_llama3_8b_galore.yaml"


# One bf16 GPU of compute capability 9.0 (an H100): what the real config is written for.
H100 = {"bf16": True, "fp8": False, "tf32": True, "n_gpu": 1, "n_node": 1, "compute_capability": "sm_90"}


def axolotl_complaints(raw: dict, capabilities: dict) -> tuple[object, list[str]]:
    """axolotl's validated config for `raw` (None when it is rejected) and every
    complaint: the validators' own message, keys the schema does not know (pydantic
    would drop them silently, so a typo would vanish), an unknown optimizer."""
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    try:
        import torch

        torch_version = torch.__version__.split("+")[0]
    except ImportError:
        torch_version = None
    try:
        cfg = validate_config(
            DictDefault(raw),
            capabilities=capabilities,
            env_capabilities={"torch_version": torch_version},
        )
    except Exception as exc:  # pydantic.ValidationError or a validator's ValueError
        return None, [str(exc)]
    complaints = []
    unknown = sorted(set(raw) - set(cfg))
    if unknown:
        complaints.append(f"keys axolotl does not know: {', '.join(unknown)}")
    # axolotl's schema takes any string as optimizer; transformers decides later.
    from axolotl.utils.schemas.enums import CustomSupportedOptimizers
    from transformers.training_args import OptimizerNames

    known = {o.value for o in OptimizerNames} | {o.value for o in CustomSupportedOptimizers}
    if cfg["optimizer"] not in known:
        complaints.append(f"unknown optimizer {cfg['optimizer']!r} (neither transformers nor axolotl has it)")
    return cfg, complaints


def main(argv: list[str]) -> int:
    import yaml

    path = Path(argv[0]) if argv else DEFAULT_CONFIG
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg, complaints = axolotl_complaints(raw, H100)
    if cfg is None:
        print(f"invalid: {path}\n{complaints[0]}")
        return 1
    import axolotl

    print(
        f"valid: {path} (axolotl {getattr(axolotl, '__version__', '?')}): optimizer={cfg['optimizer']}, "
        f"sequence_len={cfg['sequence_len']}, sample_packing={cfg['sample_packing']}, "
        f"datasets={len(cfg['datasets'])}, test_datasets={len(cfg.get('test_datasets') or [])}"
    )
    if complaints:
        print("\n".join(complaints))
        return 1
    if str(cfg["optimizer"]).startswith("galore"):
        return check_galore(cfg)
    return 0


def check_galore(cfg) -> int:
    """Build the GaLore optimizer the way transformers' Trainer does, for a tiny
    randomly initialised model of the Llama architecture, and take one step: this
    proves the optimizer name, optim_args and optim_target_modules work together
    and that the targets match the attention and MLP projections."""
    import importlib.util

    if importlib.util.find_spec("galore_torch") is None:
        print("GaLore optimizer not built: galore_torch is not installed (pip install galore-torch)")
        return 0
    import tempfile

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    ))
    optim_args = cfg.get("optim_args") or {}
    if isinstance(optim_args, dict):
        optim_args = ",".join(f"{key}={value}" for key, value in optim_args.items())  # as axolotl passes it
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir, optim=cfg["optimizer"], optim_args=optim_args,
            optim_target_modules=cfg["optim_target_modules"], learning_rate=float(cfg["learning_rate"]),
            report_to=[], use_cpu=True,
            gradient_accumulation_steps=int(cfg.get("gradient_accumulation_steps") or 1),
        )
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    groups = kwargs.pop("params", None)
    if groups is None:
        print("layerwise GaLore: built per parameter during training; nothing more to check here")
        return 0
    low_rank = [g for g in groups if "rank" in g]
    targeted = sum(len(g["params"]) for g in low_rank)
    expected = 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down per layer
    optimizer = optimizer_cls(groups, **kwargs)
    batch = torch.randint(0, 128, (2, 16))
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()
    print(f"GaLore: {optimizer_cls.__name__}, rank {low_rank[0]['rank'] if low_rank else '?'}, "
          f"{targeted} of {expected} attention/MLP matrices projected; one step taken")
    return 0 if targeted == expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
