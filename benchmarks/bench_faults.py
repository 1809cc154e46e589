"""What do scattered server faults cost a run? The same job, fault-free and with faults.

Runs the pipeline (benchmarks/bench_throughput.py's harness: the fake server in
its own process, the first N chunks of ../shared/verus_corpus/raw_text_input_wiki)
twice against servers set up alike, except that the second injects faults into a
share of requests at random, whatever the load: by default 30 %, half HTTP 500
and half HTTP 429 with `Retry-After: 0`. Prints both runs' wall time, requests in
flight and retries, and the ratio of the wall times. A run that reacts in
proportion retries those faults at once and keeps its requests in flight, so
the ratio stays near 1 / (1 - rate) of the failed attempts' own cost, far below
what halving the limit on every 429 costs.

    python benchmarks/bench_faults.py --chunks 40 --concurrency 8 --latency 0.05 --fault-rate 0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import WIKI, REPO, run  # noqa: E402

SHOWN = (
    "wall_s",
    "mean_in_flight_over_limit",
    "lowest_in_flight_allowed",
    "requests",
    "retries",
    "retry_reasons",
    "faults_injected",
    "conversations",
)


def run_pair(args: argparse.Namespace) -> tuple[dict, dict]:
    clean = run(argparse.Namespace(**{**vars(args), "fault_rate": 0.0}))
    faulty = run(args)
    return clean, faulty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--per-token-latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of requests given a fault")
    parser.add_argument("--fault-kinds", default="500,429", help="faults drawn from, equally (429 carries Retry-After: 0)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs")
    parser.add_argument("--request-timeout", type=float, default=180.0)
    parser.add_argument("--max-retry-seconds", type=float, default=600.0)
    parser.add_argument("--counter", type=int, default=3)
    parser.add_argument("--max-pairs", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1900)
    parser.add_argument("--capacity", type=int, default=0)
    parser.add_argument("--input", type=Path, default=WIKI)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / ".runs")
    args = parser.parse_args()
    if not args.input.is_dir():
        raise SystemExit(f"input folder {args.input} not found (needs ../shared/verus_corpus)")
    ratios = []
    for number in range(args.repeats):
        clean, faulty = run_pair(args)
        ratio = faulty["wall_s"] / clean["wall_s"]
        ratios.append(ratio)
        print(f"pair {number + 1}:")
        width = max(map(len, SHOWN))
        for name in SHOWN:
            print(f"  {name:<{width}}  fault-free {clean[name]!s:<10}  with faults {faulty[name]}")
        print(f"  wall time with faults / fault-free: {ratio:.3f}")
    if len(ratios) > 1:
        print("ratios: " + ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
