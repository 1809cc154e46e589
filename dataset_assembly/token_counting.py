"""Count tokens for the dataset card, without the network.

In order of preference:

1. the base model's own tokenizer, when the user points at it (`--tokenizer`:
   a tokenizer.json file or a Hugging Face model folder), loaded with the
   `tokenizers` library, or with `transformers` for a folder that has no
   tokenizer.json; the counts are then the model's own;
2. tiktoken's cl100k_base, when tiktoken is installed and its vocabulary is
   already in its cache (Llama 3's tokenizer was built from it, so English
   counts are close); tiktoken would otherwise download it, and assembling
   must not touch the network;
3. characters / 4, an estimate.

The card states which one counted, and calls the last one an estimate.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional

from generation_functions.errors import VerusToolkitError

TIKTOKEN_ENCODING = "cl100k_base"
# The address tiktoken fetches cl100k_base from; its cache file is named after it.
TIKTOKEN_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

KIND_TOKENIZER = "tokenizer"
KIND_TIKTOKEN = "tiktoken"
KIND_ESTIMATE = "estimate"


class TokenizerLoadError(VerusToolkitError):
    """--tokenizer names something that is not a tokenizer we can load offline."""


def tiktoken_cache_file() -> Optional[Path]:
    """Where tiktoken keeps cl100k_base once downloaded (its own rule: TIKTOKEN_CACHE_DIR,
    else DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache; an empty value turns caching off)."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache_dir is None:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(TIKTOKEN_CL100K_URL.encode()).hexdigest()


def _tiktoken_encoder() -> Optional[Callable[[str], list]]:
    cached = tiktoken_cache_file()
    if cached is None or not cached.is_file():
        return None  # tiktoken would download it
    try:
        import tiktoken

        encoding = tiktoken.get_encoding(TIKTOKEN_ENCODING)
    except Exception:  # not installed, or a damaged cache file
        return None
    return lambda text: encoding.encode(text, disallowed_special=())


def load_tokenizer(path: Path) -> tuple[Callable[[str], list], str]:
    """An encoder for a tokenizer.json file or a Hugging Face folder, and the
    name of the library that loaded it. Never downloads."""
    path = Path(path)
    if not path.exists():
        raise TokenizerLoadError(f"--tokenizer {path}: no such file or folder")
    tokenizer_json = path / "tokenizer.json" if path.is_dir() else path
    if tokenizer_json.is_file():
        return _load_with_tokenizers(tokenizer_json)
    return _load_with_transformers(path)


def _load_with_tokenizers(tokenizer_json: Path) -> tuple[Callable[[str], list], str]:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise TokenizerLoadError("--tokenizer needs the `tokenizers` package (pip install tokenizers)") from exc
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
    except Exception as exc:  # the library raises a bare Exception on a bad file
        raise TokenizerLoadError(f"--tokenizer {tokenizer_json}: not a tokenizer.json file ({exc})") from exc
    # The rendered text already holds the template's special tokens: add none.
    return (lambda text: tokenizer.encode(text, add_special_tokens=False).ids), "tokenizers"


def _load_with_transformers(folder: Path) -> tuple[Callable[[str], list], str]:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise TokenizerLoadError(
            f"--tokenizer {folder}: it has no tokenizer.json, and reading other tokenizer files needs "
            "`transformers` (pip install transformers sentencepiece)"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # OSError, ValueError, ...: whatever the folder lacks
        raise TokenizerLoadError(f"--tokenizer {folder}: not a tokenizer folder transformers can read ({exc})") from exc
    return (lambda text: tokenizer.encode(text, add_special_tokens=False)), "transformers"


class TokenCounter:
    """Counts tokens with the best tokenizer available offline (see the module
    docstring); `method` says which, in words for the card, and `kind` in one word."""

    def __init__(self, prefer_tiktoken: bool = True, tokenizer: Optional[Path] = None):
        self._encode: Optional[Callable[[str], list]] = None
        if tokenizer is not None:
            self._encode, library = load_tokenizer(tokenizer)
            self.kind = KIND_TOKENIZER
            self.method = f"exact counts by the tokenizer at {Path(tokenizer).resolve()} (read with {library})"
            return
        if prefer_tiktoken:
            self._encode = _tiktoken_encoder()
        if self._encode is not None:
            self.kind = KIND_TIKTOKEN
            self.method = (
                f"tiktoken {TIKTOKEN_ENCODING}, close to but not the same as Llama 3's tokenizer "
                "(pass --tokenizer with the base model's tokenizer for exact counts)"
            )
        else:
            self.kind = KIND_ESTIMATE
            self.method = (
                "an ESTIMATE of characters / 4, rounded up per text (no --tokenizer given and tiktoken's "
                "vocabulary not available offline; pass --tokenizer with the base model's tokenizer for exact counts)"
            )

    @property
    def exact(self) -> bool:
        return self.kind == KIND_TOKENIZER

    def count(self, text: str) -> int:
        if self._encode is not None:
            return len(self._encode(text))
        return math.ceil(len(text) / 4)
