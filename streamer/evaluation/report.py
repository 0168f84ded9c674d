"""Reporting of protocol results: a text table, a JSON document and a PNG plot.

The plot has two panels: HR@K per slice for every model (does the model stay ahead as the
catalogue changes?) and a bar chart of HR@K on new-item pairs. matplotlib (the ``eval`` extra) is
imported only when a plot is written, with the Agg backend (no display needed).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from streamer.errors import StreamerError
from streamer.evaluation.protocol import ModelResult, Split

__all__ = ["format_table", "pooled_hit_rates", "result_document", "write_json", "write_plot"]

# One colour per model name, the same in every plot (tab10 order); other names take the next free ones.
COLOURS = {name: index for index, name in enumerate(
    ("streamer", "streamer-cosine", "cooc", "popular", "gensim-static", "gensim-online", "gensim-retrain"))}


def _slice_document(chunk) -> dict[str, Any]:
    return {
        "pairs": chunk.pairs,
        "hits": chunk.hits,
        "hit_rate": chunk.hit_rate,
        "mean_reciprocal_rank": chunk.reciprocal_rank / chunk.pairs if chunk.pairs else 0.0,
        "covered": chunk.covered,
        "new_pairs": chunk.new_pairs,
        "new_hits": chunk.new_hits,
        "learn_seconds": round(chunk.learn_seconds, 4),
        "rank_seconds": round(chunk.rank_seconds, 4),
    }


def _model_document(result: ModelResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "hit_rate": result.hit_rate,
        "mean_reciprocal_rank": result.mean_reciprocal_rank,
        "new_hit_rate": result.new_hit_rate,
        "coverage": result.coverage,
        "pairs": result.pairs,
        "hits": result.hits,
        "new_pairs": result.new_pairs,
        "new_hits": result.new_hits,
        "learn_seconds": round(result.learn_seconds, 4),
        "warmup_learn_seconds": round(result.warmup_learn_seconds, 4),
        "rank_seconds": round(result.rank_seconds, 4),
        "slices": [_slice_document(chunk) for chunk in result.slices],
    }


def result_document(dataset: str, split: Split, results: list[ModelResult], **run: Any) -> dict[str, Any]:
    """Everything needed to rebuild the table and the plot; ``run`` adds settings (seed, command, ...)."""
    return {
        "protocol": "chunked prequential next-item (shared/EVALUATION.md)",
        "dataset": dataset,
        "slices": len(split.slices),
        "k": results[0].k if results else 10,
        "events": len(split.warmup) + sum(len(chunk) for chunk in split.slices),
        "warmup_events": len(split.warmup),
        "t0": split.t0,
        "t1": split.t1,
        "cut": split.cut,
        **run,
        "models": [_model_document(result) for result in results],
    }


def format_table(results: list[ModelResult]) -> str:
    """One row per model: HR@K, MRR@K, HR@K on new pairs, new pairs, coverage, pairs, learn time."""
    k = results[0].k if results else 10
    header = ("model", f"HR@{k}", f"MRR@{k}", f"HR@{k} new", "new pairs", "coverage", "pairs", "learn s")
    rows = [
        (
            result.name,
            f"{result.hit_rate:.4f}",
            f"{result.mean_reciprocal_rank:.4f}",
            f"{result.new_hit_rate:.4f}",
            str(result.new_pairs),
            f"{result.coverage:.3f}",
            str(result.pairs),
            f"{result.learn_seconds:.1f}",
        )
        for result in results
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if column == 0 else cell.rjust(widths[column])
                       for column, cell in enumerate(row)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(document: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    _atomic_write(path, json.dumps(document, indent=2).encode("utf-8") + b"\n")
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise StreamerError(
            "the plot needs matplotlib: pip install -e '.[eval]' in a checkout, or pip install 'streamer-item2vec[eval]'"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


MAX_POINTS = 25


def pooled_hit_rates(slices: list[dict[str, Any]], group: int) -> tuple[list[float], list[float]]:
    """HR per run of ``group`` consecutive slices (hits / pairs pooled); x = the run's middle slice (1-based).

    A run without pairs is NaN (a gap in the line).
    """
    positions, rates = [], []
    for start in range(0, len(slices), group):
        run = slices[start:start + group]
        pairs = sum(chunk["pairs"] for chunk in run)
        positions.append(start + (len(run) + 1) / 2)
        rates.append(sum(chunk["hits"] for chunk in run) / pairs if pairs else float("nan"))
    return positions, rates


def _draw_per_slice(axes, models: list[dict[str, Any]], colours: list, k: int, slices: int) -> None:
    from matplotlib.ticker import MaxNLocator

    group = -(-slices // MAX_POINTS)  # pool consecutive slices so a fine S stays readable
    if models:  # query pairs per point, as faint bars behind the lines: a point on few pairs is noisy
        counts = axes.twinx()
        positions, _ = pooled_hit_rates(models[0]["slices"], group)
        pairs = [sum(chunk["pairs"] for chunk in models[0]["slices"][start:start + group])
                 for start in range(0, slices, group)]
        counts.bar(positions, pairs, width=0.8 * group, color="grey", alpha=0.15)
        counts.set_ylabel("query pairs per point (grey bars)", color="grey")
        counts.tick_params(axis="y", colors="grey", labelsize=8)
        axes.set_zorder(counts.get_zorder() + 1)
        axes.patch.set_visible(False)
    for model, colour in zip(models, colours):
        positions, rates = pooled_hit_rates(model["slices"], group)
        axes.plot(positions, rates, label=f"{model['name']} ({model['hit_rate']:.3f})", color=colour,
                  marker="o", markersize=4, linewidth=1.6, linestyle=_line_style(model["name"]))
    pooled = f"; each point pools {group} slices, pair-weighted" if group > 1 else ""
    axes.set_xlabel(f"time slice (1 = just after the warm-up, {slices} = end of log{pooled})")
    axes.set_ylabel(f"HR@{k}")
    axes.set_ylim(bottom=0)
    axes.set_xlim(0.5 - 0.4 * group, slices + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend(title=f"model (overall HR@{k})", fontsize=8, title_fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.13), ncol=4)
    axes.set_title(f"HR@{k} per time slice")


def _is_served(name: str) -> bool:
    """Served-path models (``streamer@kafka``) share their in-process model's colour, drawn dashed/hatched."""
    return "@" in name


def _line_style(name: str) -> str:
    return "--" if _is_served(name) else "-"


def _draw_new_items(axes, models: list[dict[str, Any]], colours: list, k: int) -> None:
    values = [model["new_hit_rate"] for model in models]
    bars = axes.bar(range(len(models)), values, color=colours,
                    hatch=["//" if _is_served(model["name"]) else "" for model in models])
    axes.bar_label(bars, labels=[f"{value:.3f}" for value in values], fontsize=8, padding=2)
    axes.set_xticks(range(len(models)), [model["name"] for model in models], rotation=35, ha="right", fontsize=8)
    axes.set_ylabel(f"HR@{k} on new-item pairs")
    new_pairs = models[0]["new_pairs"] if models else 0
    axes.set_title(f"new items: {new_pairs} pairs\n(target never seen in the warm-up)", fontsize=10)
    axes.set_ylim(0, max(values + [0.01]) * 1.18)
    axes.grid(True, axis="y", alpha=0.3)


def write_plot(document: dict[str, Any], path: str | Path) -> Path:
    """PNG: HR@K per slice for each model (left) and HR@K on new-item pairs (right)."""
    pyplot = _pyplot()
    models, k, slices = document["models"], document["k"], document["slices"]
    figure, (per_slice, new_items) = pyplot.subplots(
        1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2.3, 1]}, constrained_layout=True
    )
    palette = pyplot.get_cmap("tab10")
    colours = [palette(COLOURS.get(model["name"].split("@", 1)[0], len(COLOURS) + index) % 10)
               for index, model in enumerate(models)]
    _draw_per_slice(per_slice, models, colours, k, slices)
    _draw_new_items(new_items, models, colours, k)
    pairs = models[0]["pairs"] if models else 0
    figure.suptitle(f"{document['dataset']}: chunked prequential next-item evaluation, S = {slices}, "
                    f"{pairs} query pairs")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
