"""The whole benchmark suite in one run; a thin wrapper of ``streamer bench`` (see streamer/benchmarks/).

    python ops/bench_suite.py [--quick] [--out bench-results]
"""

from __future__ import annotations

import sys

from streamer.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
