"""Peak memory of a whole pipeline run over a generated ~100 MB corpus.

The run streams: documents are read one at a time, at most 2 x CONCURRENCY_LIMIT
chunks are in progress, a finished chunk's state goes to disk, and the datasets
are assembled by reading those records back in order. So peak memory should not
grow with the corpus. To keep the request count manageable the run uses big
chunks (CHUNK_SIZE 20000), one pair per chunk, one vote and no question check:
about four requests per chunk, against the fake server with no latency.

Then it runs the same command again over the same OUTPUT: a resumed run must
make no model request and hold only the index of the stored calls.

    python benchmarks/bench_pipeline_memory.py [--size-mb 100]

Target: under 1 GB peak for 100 MB of input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_reading_chunking import generate_corpus  # noqa: E402
from bench_throughput import server_stats, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    server_args = argparse.Namespace(latency=0.0, per_token_latency=0.0, capacity=0, max_pairs=1)
    workdir = REPO / "benchmarks" / ".runs"
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        corpus = Path(tmp) / "in"
        written = generate_corpus(corpus, args.size_mb)
        process, base = start_server(server_args)
        try:
            config = Path(tmp) / "config.yaml"
            config.write_text(json.dumps({
                "API": {"BASE_URL": base + "/v1", "LOGICAL_MODEL": "small", "LARGE_LOGICAL_MODEL": "large"},
                "PATH": {"INPUT": str(corpus), "OUTPUT": str(Path(tmp) / "out"),
                         "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
                "SYSTEM": {"CHUNK_SIZE": args.chunk_size, "CONCURRENCY_LIMIT": args.concurrency, "DOUBLE_CHECK_COUNTER": 1},
                "SKIP": {"QUESTION_CHECK": True},
            }))
            first, first_requests = run_child(config, base)
            # The same run again: everything is stored, so it must ask nothing
            # and hold only the index of the stored calls, not the calls.
            again, again_requests = run_child(config, base)
        finally:
            process.kill()
            process.wait()
    print(f"input                 {written / 1e6:.1f} MB")
    print(f"chunks                {first['chunks']}")
    print(f"requests              {first_requests} ({first['reused']} calls reused: the generated corpus repeats itself)")
    print(f"conversations         {first['conversations']}")
    print(f"wall                  {first['wall']:.1f} s")
    print(f"peak memory (VmHWM)   {first['peak_mb']:.0f} MB")
    print(f"rerun: model requests {again_requests}")
    print(f"rerun: calls reused   {again['reused']}")
    print(f"rerun: wall           {again['wall']:.1f} s")
    print(f"rerun: peak memory    {again['peak_mb']:.0f} MB")


def run_child(config: Path, base: str) -> tuple[dict, int]:
    """One `processing.py` run in a fresh process; its report and the requests it made."""
    before = server_stats(base)["requests"]  # model calls only; the server check is a GET
    started = time.monotonic()
    # /usr/bin/time is not everywhere; the child reports its own VmHWM at exit.
    child = subprocess.run([sys.executable, "-c", _CHILD, str(REPO), str(config)], capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(child.stderr[-3000:])
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["wall"] = time.monotonic() - started
    return result, server_stats(base)["requests"] - before


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import processing
code = processing.main(["--config", sys.argv[2], "--no-progress"])
report = json.load(open(json.load(open(sys.argv[2]))["PATH"]["OUTPUT"] + "/run_report.json"))
peak = 0.0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"code": code, "chunks": report["funnel"]["chunks"], "reused": report["requests"]["reused"],
                  "conversations": report["funnel"]["conversations"], "peak_mb": peak}))
sys.exit(code)
"""


if __name__ == "__main__":
    main()
