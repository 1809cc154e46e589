"""How close does a run come to the ideal schedule against a latency-modelled server?

Starts the fake OpenAI-compatible server in its own process (a fixed latency per
request plus a per-output-token delay, optional capacity), runs the pipeline
in-process on the first N chunks of ../shared/verus_corpus/raw_text_input_wiki,
and prints:

- wall time, and the ideal: max(total request-seconds / CONCURRENCY_LIMIT,
  longest chain of dependent requests); their ratio;
- the clairvoyant schedule: the same requests, with the same dependencies and
  service times, placed by a scheduler that knew every answer in advance. It is
  what the best scheduler could reach, and can lie well above the ideal: at the
  start only question generation can run, and slots idle at the end;
- mean requests in flight (measured at the server) over the limit;
- client CPU milliseconds per request (this process only: the server runs apart);
- requests and prompt/completion tokens per kept conversation.

    python benchmarks/bench_throughput.py --chunks 200 --concurrency 50 --latency 0.3 --counter 3

With --capacity below --concurrency the server queues what it cannot serve, and
a short --request-timeout makes queued requests time out: the overload case,
where the run must lower its own limit rather than give up. The work bound then
divides by the capacity.

    python benchmarks/bench_throughput.py --chunks 200 --capacity 16 --request-timeout 0.7 --max-retry-seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
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
from generation_functions.store import CALL_LOG, CALLS_DIR  # noqa: E402
from tests.fake_llm_server import _tokens as answer_tokens  # noqa: E402

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
        "--fault-rate", str(getattr(args, "fault_rate", 0.0)), "--faults", getattr(args, "fault_kinds", "500,429"),
        "--seed", str(getattr(args, "seed", 0)),
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
    for _ in range(50):  # with --fault-rate the warm-up itself may draw a fault
        try:
            urllib.request.urlopen(request, timeout=30).read()
            break
        except urllib.error.HTTPError:
            continue
    urllib.request.urlopen(base + "/stats/reset", timeout=5).read()


def server_stats(base: str) -> dict:
    return json.loads(urllib.request.urlopen(base + "/stats", timeout=5).read())


@dataclass
class Task:
    """One request of the recorded run, with the requests that had to wait for it."""

    seconds: float
    successors: list["Task"] = field(default_factory=list)
    path: float = 0.0  # the longest chain of requests from this one to the end of its chunk


def _then(first: list[Task], seconds: float, count: int = 1) -> list[Task]:
    """`count` parallel requests that each wait for all of `first`."""
    tasks = [Task(seconds) for _ in range(count)]
    for before in first:
        before.successors.extend(tasks)
    return tasks


class ServiceTimes:
    """Each request's service time at the fake server, read off its stored answer.

    The fake serves a request in latency + per-token delay x the tokens of its
    answer, and every answer is in the run's call logs, so a request's own time
    is known exactly; with a per-token delay, step means would flatter the
    schedule. A request not found counts its step's mean.
    """

    def __init__(self, output: Path, latency: float, per_token: float, means: dict[str, float]):
        self._means = means
        self._seconds: dict[tuple, float] = {}
        for step in means:
            log = output / CALLS_DIR / step / CALL_LOG
            if not log.is_file():
                continue
            for line in log.read_bytes().splitlines():
                record = json.loads(line)
                seconds = latency + per_token * answer_tokens(record["response"])
                self._seconds[self._key(step, record["values"])] = seconds

    @staticmethod
    def _key(step: str, values: dict) -> tuple:
        return step, values.get("text"), values.get("question"), values.get("answer")

    def of(self, step: str, **values: str) -> float:
        return self._seconds.get(self._key(step, values), self._means[step])


def recorded_requests(output: Path, keys: list[str], times: ServiceTimes, counter: int) -> list[Task]:
    """The requests each chunk made and what each waited for, rebuilt from its result.

    A chunk asks its questions; each pair then takes its check votes in rounds
    (all votes that can decide at once, then one more per split), its repair,
    and the chunk's conversation waits for every pair.
    """
    needed = counter // 2 + 1
    roots = []
    for key in keys:
        result = json.loads((output / RESULTS_DIR / f"{key}.json").read_text())
        text = result["chunk"]
        question = Task(times.of(QUESTION_GENERATION, text=text))
        roots.append(question)
        pair_ends: list[Task] = []
        for record in result["vetted"]:
            last = [question]
            # The pair as the checks saw it, before any rewording by the repair.
            checked_question, checked_answer = record.get("before_repair", (record["question"], record["answer"]))
            raw = {"text": text, "question": checked_question, "answer": checked_answer}
            for votes_key, step in (("question_votes", QUESTION_CHECK), ("answer_votes", ANSWER_CHECK)):
                if votes_key in record:
                    cast = sum(record[votes_key])
                    last = _then(last, times.of(step, **raw), min(cast, needed))
                    for _ in range(cast - needed):
                        last = _then(last, times.of(step, **raw))
            if "repair" in record or record.get("tossed_at") == "context_repair":
                last = _then(last, times.of(CONTEXT_REPAIR, **raw))
            pair_ends.extend(last)
        if result["pairs"]:
            _then(pair_ends, times.of(CONVERSATION, text=text))
    return roots


def _all_tasks(roots: list[Task]) -> list[Task]:
    seen: dict[int, Task] = {}
    stack = list(roots)
    while stack:
        task = stack.pop()
        if id(task) not in seen:
            seen[id(task)] = task
            stack.extend(task.successors)
    return list(seen.values())


def longest_chain(roots: list[Task]) -> float:
    """The slowest chunk's chain of dependent requests (no schedule can beat it).

    Sets each task's `path` on the way, visiting successors before the task."""
    done: set[int] = set()
    for root in roots:
        stack = [(root, False)]
        while stack:
            task, expanded = stack.pop()
            if id(task) in done:
                continue
            if expanded:
                task.path = task.seconds + max((s.path for s in task.successors), default=0.0)
                done.add(id(task))
            else:
                stack.append((task, True))
                stack.extend((s, False) for s in task.successors if id(s) not in done)
    return max((root.path for root in roots), default=0.0)


def clairvoyant_schedule(roots: list[Task], limit: int) -> float:
    """The makespan of the same requests under the same limit, scheduled by a
    scheduler that knew every answer in advance: longest remaining chain first
    (list scheduling on the critical path). It counts what the ideal formula
    does not: nothing but the first step can run at the start, and requests
    come in whole service times, so slots idle where the work runs out."""
    longest_chain(roots)
    sequence = itertools.count()
    ready = [(-task.path, next(sequence), task) for task in roots]
    heapq.heapify(ready)
    waiting_on: dict[int, int] = {}
    for task in _all_tasks(roots):
        for successor in task.successors:
            waiting_on[id(successor)] = waiting_on.get(id(successor), 0) + 1
    running: list[tuple[float, int, Task]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < limit:
            _, _, task = heapq.heappop(ready)
            heapq.heappush(running, (now + task.seconds, next(sequence), task))
        now, _, finished = heapq.heappop(running)
        for successor in finished.successors:
            waiting_on[id(successor)] -= 1
            if waiting_on[id(successor)] == 0:
                heapq.heappush(ready, (-successor.path, next(sequence), successor))
    return now


def run(args: argparse.Namespace) -> dict:
    # What can run at once: the limit, or fewer where the server serves fewer.
    slots = min(args.concurrency, args.capacity) if args.capacity else args.concurrency
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
                               "REQUEST_TIMEOUT": args.request_timeout, "MAX_RETRY_SECONDS": args.max_retry_seconds,
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
            times = ServiceTimes(Path(tmp) / "out", args.latency, args.per_token_latency, per_step)
            roots = recorded_requests(Path(tmp) / "out", keys, times, args.counter)
            chain = longest_chain(roots)
            clairvoyant = clairvoyant_schedule(roots, slots)
    finally:
        process.kill()
        process.wait()
    requests = report["requests"]["made"]
    conversations = max(1, report["funnel"]["conversations"])
    work_bound = stats["service_seconds"] / slots
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
        "clairvoyant_schedule_s": round(clairvoyant, 3),
        "wall_over_clairvoyant": round(wall / clairvoyant, 3) if clairvoyant else None,
        # CLOCK_MONOTONIC is shared by the two processes, so these line up.
        "start_to_first_request_s": round(stats["first_request_at"] - wall_started, 3),
        "last_response_to_end_s": round(wall_ended - stats["last_response_at"], 3),
        "mean_in_flight_over_limit": round(stats["mean_in_flight"] / args.concurrency, 3),
        # The same, as the run's own report counts it (what a user sees in the summary).
        "reported_mean_in_flight_over_limit": round(report["requests"]["mean_in_flight"] / args.concurrency, 3),
        "peak_in_flight": stats["peak_in_flight"],
        "requests": requests,
        "client_cpu_ms_per_request": round(1000 * cpu / max(1, requests), 3),
        "requests_per_conversation": round(requests / conversations, 2),
        "prompt_tokens_per_conversation": round(report["requests"]["prompt_tokens"] / conversations, 1),
        "completion_tokens_per_conversation": round(report["requests"]["completion_tokens"] / conversations, 1),
        "conversations": report["funnel"]["conversations"],
        "retries": report["requests"]["retries"],
        "lowest_in_flight_allowed": report["requests"]["lowest_in_flight_allowed"],
        "retry_reasons": report["requests"]["retry_reasons"],
        "faults_injected": stats.get("faults", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request")
    parser.add_argument("--per-token-latency", type=float, default=0.0, help="seconds per output token")
    parser.add_argument("--capacity", type=int, default=0, help="server capacity (0: unlimited)")
    parser.add_argument("--request-timeout", type=float, default=180.0, help="SYSTEM.REQUEST_TIMEOUT")
    parser.add_argument("--max-retry-seconds", type=float, default=600.0, help="SYSTEM.MAX_RETRY_SECONDS")
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
