"""The distribution is streamer-item2vec (``streamer`` on PyPI is an unrelated package); every install hint
names it or a checkout's ``pip install -e '.[extra]'``, never ``pip install 'streamer[...]'``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
WRONG = re.compile(r"(?<![\w-])streamer\[")  # streamer[eval], not streamer-item2vec[eval]


def _files() -> list[Path]:
    patterns = ("streamer/**/*.py", "ops/*", "docs/*.md", "tests/**/*.py", ".ci/*")
    found = [path for pattern in patterns for path in REPOSITORY.glob(pattern) if path.is_file()]
    return found + [REPOSITORY / name for name in ("README.md", "pyproject.toml", "docker-compose.yml")]


def test_the_distribution_name_is_streamer_item2vec_and_the_import_package_streamer():
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    assert project["name"] == "streamer-item2vec"
    assert project["scripts"] == {"streamer": "streamer.cli:main"}
    assert all("streamer[" not in requirement for requirement in project["optional-dependencies"]["dev"])


def test_no_install_hint_names_the_taken_distribution():
    offenders = [f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
                 for path in _files() if path.name != Path(__file__).name
                 for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                 if WRONG.search(line)]
    assert not offenders, "\n".join(offenders)


def test_the_install_hints_of_missing_extras_name_the_checkout_and_the_distribution():
    from streamer.evaluation import gensim_models, report
    from streamer import localstack

    for module in (gensim_models, report, localstack):
        text = Path(module.__file__).read_text()
        assert "pip install -e '.[" in text and "streamer-item2vec[" in text, module.__name__
