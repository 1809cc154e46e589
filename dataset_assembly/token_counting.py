"""Count tokens for the dataset card.

Uses tiktoken when it can and a characters-per-token estimate when it cannot,
so assembling never fails for want of a tokenizer; the card says which was used.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional


class TokenCounter:
    """tiktoken's cl100k_base when it is installed and its vocabulary is at hand
    (Llama 3's tokenizer was built from it and adds ~28k mostly non-English tokens,
    so English counts are close); otherwise characters / 4, rounded up per text."""

    def __init__(self, prefer_tiktoken: bool = True):
        self._encode: Optional[Callable[[str], Any]] = None
        self.method = "approximation: characters / 4, rounded up per text (tiktoken not available)"
        if prefer_tiktoken:
            try:
                import tiktoken

                encoding = tiktoken.get_encoding("cl100k_base")
                self._encode = lambda text: encoding.encode(text, disallowed_special=())
                self.method = "tiktoken cl100k_base (close to, not identical with, Llama 3's tokenizer)"
            except Exception:  # not installed, or no vocabulary file offline
                self._encode = None

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def count(self, text: str) -> int:
        if self._encode is not None:
            return len(self._encode(text))
        return math.ceil(len(text) / 4)
