"""``streamer bench``: the benchmark suite (training, memory, daemon, lookup) in one run and one report."""
