"""Peak memory of a whole pipeline run over a generated ~100 MB corpus.

The run streams: documents are read one at a time, at most 2 x CONCURRENCY_LIMIT
chunks are in progress, a finished chunk's state goes to disk, and the datasets
are assembled by reading those records back in order. So peak memory should not
grow with the corpus. To keep the request count manageable the run uses big
chunks (CHUNK_SIZE 20000), one pair per chunk, one vote and no question check:
about four requests per chunk, against the fake server with no latency.

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
            started = time.monotonic()
            # /usr/bin/time is not everywhere; the child reports its own VmHWM at exit.
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, str(REPO), str(config)], capture_output=True, text=True
            )
            wall = time.monotonic() - started
            stats = server_stats(base)
        finally:
            process.kill()
            process.wait()
        if child.returncode != 0:
            raise SystemExit(child.stderr[-3000:])
        result = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"input                 {written / 1e6:.1f} MB")
    print(f"chunks                {result['chunks']}")
    print(f"requests              {stats['requests']}")
    print(f"conversations         {result['conversations']}")
    print(f"wall                  {wall:.1f} s")
    print(f"peak memory (VmHWM)   {result['peak_mb']:.0f} MB")


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
print(json.dumps({"code": code, "chunks": report["funnel"]["chunks"],
                  "conversations": report["funnel"]["conversations"], "peak_mb": peak}))
sys.exit(code)
"""


if __name__ == "__main__":
    main()
