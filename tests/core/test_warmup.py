"""The daemon compiles the engine's kernels before its first record (streamer.core.warmup)."""

import subprocess
import sys

CHECK = """
from streamer.core import learning, noise, sgns
from streamer.core.settings import TrainerSettings
from streamer.core.warmup import warm_up

kernels = {"learn_events": learning.learn_events, "replay_pairs": learning.replay_pairs,
           "initialise_rows": sgns.initialise_rows, "fenwick_build": noise.fenwick_build}
before = {name: len(kernel.signatures) for name, kernel in kernels.items()}
seconds = warm_up(TrainerSettings(vector_size=8, seed=2))
after = {name: len(kernel.signatures) for name, kernel in kernels.items()}
print(before, after, seconds)
assert not any(before.values()), before
assert all(after.values()), after
"""


def test_warm_up_compiles_the_kernels_the_daemon_calls_in_a_fresh_interpreter():
    # a fresh interpreter: in this one, other tests have compiled the kernels already
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
