"""Every fenced ``bash``, ``sh``, ``console`` or ``python`` block of README.md and docs/*.md runs as written.

A block either runs here — in a fresh temporary directory (with ``ops/`` linked in, so ``bash ops/dev.sh``
and ``python3 ops/stack.py`` work as in a checkout), ``bash ops/dev.sh`` using this test's interpreter
(``STREAMER_PYTHON``), ``STREAMER_BOOTSTRAP_SERVERS`` and ``STREAMER_REDIS_URL`` pointing at the local stack,
and the namespace ``i2v`` holding a few items published by the daemon's own sink — or it follows a line
``<!-- not-runnable: reason -->``. A block followed by ``<!-- output -->`` and a ``text`` block must print
those lines, in that order. ``console`` blocks run their ``$ `` lines and check the other lines likewise.
New pages under docs/ are covered without any change here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
RUNNABLE = {"bash", "sh", "console", "python"}
NOT_RUNNABLE = re.compile(r"^<!--\s*not-runnable:\s*(?P<reason>.*?)\s*-->$")
OUTPUT = "<!-- output -->"
FENCE = re.compile(r"^(?P<fence>`{3,})(?P<language>[\w+-]*)\s*$")


@dataclass
class Block:
    path: Path
    line: int
    language: str
    code: str
    marker: str | None        # the line right before the fence (blank lines skipped), if it is a comment
    expected: list[str]       # the lines of a following <!-- output --> text block

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPOSITORY)}:{self.line}"


def _pages() -> list[Path]:
    return [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != opening["fence"]:
            end += 1
        previous = next((lines[number].strip() for number in range(index - 1, -1, -1) if lines[number].strip()), "")
        blocks.append(Block(path, index + 1, opening["language"], "\n".join(lines[index + 1:end]) + "\n",
                            previous if previous.startswith("<!--") else None, []))
        index = end + 1
    for block, following in zip(blocks, blocks[1:]):
        if following.marker == OUTPUT and following.language == "text":
            block.expected = [line.strip() for line in following.code.splitlines() if line.strip()]
    return blocks


ALL_BLOCKS = [block for page in _pages() for block in parse_blocks(page)]
RUN_BLOCKS = [block for block in ALL_BLOCKS
              if block.language in RUNNABLE and not (block.marker and NOT_RUNNABLE.match(block.marker))]


def test_every_shell_or_python_block_runs_or_says_why_not():
    assert len(_pages()) > 5 and RUN_BLOCKS, "the pages and their runnable blocks were found"
    for block in ALL_BLOCKS:
        marked = block.marker and NOT_RUNNABLE.match(block.marker)
        if marked:
            assert block.language in RUNNABLE, f"{block.name}: not-runnable marks a {block.language!r} block"
            assert marked["reason"], f"{block.name}: not-runnable needs a reason"
        if block.marker == OUTPUT:
            assert block.language == "text", f"{block.name}: an output block is ```text"
        assert block.language, f"{block.name}: give the block a language (```text for output and figures)"


def test_the_parser_finds_markers_and_expected_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- not-runnable: needs Docker -->\n\n```bash\ndocker ps\n```\n"
                    "```python\nprint(1)\n```\n<!-- output -->\n```text\n1\n```\n")
    blocks = parse_blocks(page)
    assert [(block.language, block.line) for block in blocks] == [("bash", 4), ("python", 7), ("text", 11)]
    assert NOT_RUNNABLE.match(blocks[0].marker)["reason"] == "needs Docker"
    assert blocks[1].expected == ["1"] and blocks[1].marker is None


@pytest.fixture
def published_i2v(redis_url):
    """The namespace ``i2v`` as the daemon writes it: a small model's items, neighbour lists and meta."""
    import redis

    from streamer import Trainer
    from streamer.io.lease import Lease
    from streamer.io.redis_sink import RedisSink
    from streamer.keys import Keys

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match="i2v:*", count=1000):
        client.delete(key)
    engine = Trainer(vector_size=8, seed=1)
    engine.learn([(f"u{user}", str(1 + (user + step) % 5), 1_700_000_000.0 + 60 * step)
                  for user in range(20) for step in range(6)])
    lease = Lease(client, Keys("i2v"), ttl_seconds=30)
    assert lease.acquire()
    sink = RedisSink(client, Keys("i2v"), lease)
    sink.add_items(engine.take_changed(), produced_at=None)
    sink.flush(engine)
    sink.refresh_neighbours(engine, limit=100, budget_seconds=10)
    lease.release()  # a daemon started by a snippet takes the namespace over
    yield
    client.close()


def _environment(kafka_bootstrap: str, redis_url: str, workdir: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STREAMER_")}
    environment.update(
        STREAMER_BOOTSTRAP_SERVERS=kafka_bootstrap, STREAMER_REDIS_URL=redis_url, STREAMER_PYTHON=sys.executable,
        STREAMER_DATA_ROOT=os.environ.get("STREAMER_DATA_ROOT", str(REPOSITORY.parent / "shared" / "data")),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        TMPDIR=str(workdir / "tmp"), MPLBACKEND="Agg")
    return environment


def _script(block: Block) -> tuple[list[str], list[str]]:
    """(command to run the block from a file, output lines it must print)."""
    if block.language == "python":
        return [sys.executable, "snippet.py"], block.expected
    if block.language != "console":
        return ["bash", "-euo", "pipefail", "snippet.sh"], block.expected
    commands = [line[2:] for line in block.code.splitlines() if line.startswith("$ ")]
    expected = [line.strip() for line in block.code.splitlines() if line.strip() and not line.startswith("$ ")]
    return ["bash", "-euo", "pipefail", "-c", "\n".join(commands)], expected


@pytest.mark.integration
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[block.name for block in RUN_BLOCKS])
def test_the_block_runs_as_written(block, kafka_bootstrap, redis_url, published_i2v, tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "ops").symlink_to(REPOSITORY / "ops")
    (tmp_path / ("snippet.py" if block.language == "python" else "snippet.sh")).write_text(block.code)
    command, expected = _script(block)
    result = subprocess.run(command, cwd=tmp_path, env=_environment(kafka_bootstrap, redis_url, tmp_path),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{block.name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    printed = [line.strip() for line in result.stdout.splitlines()]
    position = 0
    for line in expected:
        assert line in printed[position:], f"{block.name}: {line!r} not printed (in order):\n{result.stdout}"
        position = printed.index(line, position) + 1
    assert "Traceback" not in result.stderr, result.stderr
