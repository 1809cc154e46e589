"""How close does a run come to the ideal schedule against a latency-modelled server?

Starts the fake OpenAI-compatible server in its own process (a fixed latency per
request plus a per-output-token delay, optional capacity), runs the pipeline
in-process on the first N chunks of ../shared/verus_corpus/raw_text_input_wiki,
and prints:

- wall time, and the ideal: max(total request-seconds / CONCURRENCY_LIMIT,
  longest chain of dependent requests); their ratio;
- mean requests in flight (measured at the server) over the limit;
- client CPU milliseconds per request (this process only: the server runs apart);
- requests and prompt/completion tokens per kept conversation.

    python benchmarks/bench_throughput.py --chunks 200 --concurrency 50 --latency 0.3 --counter 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_flow_functions import (  # noqa: E402
    ANSWER_CHECK,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    RESULTS_DIR,
    run_pipeline,
)
from generation_functions.config import config_from_dict  # noqa: E402

WIKI = REPO.parent / "shared" / "verus_corpus" / "raw_text_input_wiki"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "tests.fake_llm_server", "--port", str(port),
        "--latency", str(args.latency), "--per-token-latency", str(args.per_token_latency),
        "--capacity", str(args.capacity), "--max-pairs", str(args.max_pairs),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise SystemExit("the fake server did not start")
    warm_up(base)
    return process, base


def warm_up(base: str) -> None:
    """One request before timing: the server's first answer pays its own start-up."""
    body = json.dumps({"model": "warm-up", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    urllib.request.urlopen(base + "/stats/reset", timeout=5).read()


def server_stats(base: str) -> dict:
    return json.loads(urllib.request.urlopen(base + "/stats", timeout=5).read())


def longest_chain(output: Path, keys: list[str], per_step: dict[str, float], counter: int) -> float:
    """The slowest chunk's chain of dependent requests, from what each chunk did.

    A chunk's chain is its question generation, then its slowest pair (vote
    rounds of each check, then repair), then its conversation attempts. Each
    request counts its step's mean service time.
    """
    needed = counter // 2 + 1
    slowest = 0.0
    for key in keys:
        result = json.loads((output / RESULTS_DIR / f"{key}.json").read_text())
        pair_chain = 0.0
        for record in result["vetted"]:
            chain = 0.0
            for votes_key, step in (("question_votes", QUESTION_CHECK), ("answer_votes", ANSWER_CHECK)):
                if votes_key in record:
                    cast = sum(record[votes_key])
                    chain += (1 + max(0, cast - needed)) * per_step[step]
            if "repair" in record or record.get("tossed_at") == "context_repair":
                chain += per_step[CONTEXT_REPAIR]
            pair_chain = max(pair_chain, chain)
        conversation = per_step[CONVERSATION] if result["pairs"] else 0.0
        slowest = max(slowest, per_step[QUESTION_GENERATION] + pair_chain + conversation)
    return slowest


def run(args: argparse.Namespace) -> dict:
    process, base = start_server(args)
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            config = config_from_dict(
                {
                    "API": {"BASE_URL": base + "/v1", "LOGICAL_MODEL": "small", "LARGE_LOGICAL_MODEL": "large"},
                    "PATH": {"INPUT": str(args.input), "OUTPUT": str(Path(tmp) / "out"),
                             "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
                    "SYSTEM": {"CHUNK_SIZE": args.chunk_size, "CONCURRENCY_LIMIT": args.concurrency,
                               "DOUBLE_CHECK_COUNTER": args.counter, "USE_SUBSET": True, "SUBSET_SIZE": args.chunks},
                },
                base_dir=REPO,
            )
            cpu_started, wall_started = time.process_time(), time.monotonic()
            report = asyncio.run(run_pipeline(config))
            wall_ended = time.monotonic()
            wall = wall_ended - wall_started
            cpu = time.process_time() - cpu_started
            stats = server_stats(base)
            keys = [p.stem for p in (Path(tmp) / "out" / RESULTS_DIR).glob("*.json")]
            per_step = {step: stats["service_by_step"].get(step, 0.0) / max(1, stats["by_step"].get(step, 0))
                        for step in (QUESTION_GENERATION, QUESTION_CHECK, ANSWER_CHECK, CONTEXT_REPAIR, CONVERSATION)}
            chain = longest_chain(Path(tmp) / "out", keys, per_step, args.counter)
    finally:
        process.kill()
        process.wait()
    requests = report["requests"]["made"]
    conversations = max(1, report["funnel"]["conversations"])
    work_bound = stats["service_seconds"] / args.concurrency
    ideal = max(work_bound, chain)
    return {
        "chunks": report["funnel"]["chunks"],
        "concurrency_limit": args.concurrency,
        "latency_s": args.latency,
        "double_check_counter": args.counter,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "work_bound_s": round(work_bound, 3),
        "longest_chain_s": round(chain, 3),
        "wall_over_ideal": round(wall / ideal, 3),
        "wall_over_chain": round(wall / chain, 3) if chain else None,
        # CLOCK_MONOTONIC is shared by the two processes, so these line up.
        "start_to_first_request_s": round(stats["first_request_at"] - wall_started, 3),
        "last_response_to_end_s": round(wall_ended - stats["last_response_at"], 3),
        "mean_in_flight_over_limit": round(stats["mean_in_flight"] / args.concurrency, 3),
        "peak_in_flight": stats["peak_in_flight"],
        "requests": requests,
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, requests), 3),
        "requests_per_conversation": round(requests / conversations, 2),
        "prompt_tokens_per_conversation": round(report["requests"]["prompt_tokens"] / conversations, 1),
        "completion_tokens_per_conversation": round(report["requests"]["completion_tokens"] / conversations, 1),
        "conversations": report["funnel"]["conversations"],
        "retries": report["requests"]["retries"],
        "retry_reasons": report["requests"]["retry_reasons"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request")
    parser.add_argument("--per-token-latency", type=float, default=0.0, help="seconds per output token")
    parser.add_argument("--capacity", type=int, default=0, help="server capacity (0: unlimited)")
    parser.add_argument("--counter", type=int, default=3, help="DOUBLE_CHECK_COUNTER")
    parser.add_argument("--max-pairs", type=int, default=3, help="pairs the fake model writes per chunk")
    parser.add_argument("--chunk-size", type=int, default=1900)
    parser.add_argument("--input", type=Path, default=WIKI)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "benchmarks" / ".runs",
        help="where the run's OUTPUT goes (on the disk a real OUTPUT would use; some /tmp mounts are much slower)",
    )
    args = parser.parse_args()
    if not args.input.is_dir():
        raise SystemExit(f"input folder {args.input} not found (needs ../shared/verus_corpus)")
    result = run(args)
    width = max(map(len, result))
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
