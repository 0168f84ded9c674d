import json

import pytest

from streamer.cli import main
from tests.evaluation.tiny_log import TINY_LOG


@pytest.fixture()
def tiny_csv(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("user,item,ts\n" + "".join(f"{key},{item},{ts}\n" for key, item, ts in TINY_LOG))
    return path


def test_eval_on_a_csv_prints_the_table_and_writes_json_and_png(tiny_csv, tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["eval", str(tiny_csv), "--columns", "user,item,ts", "--slices", "2", "--models", "cooc,popular",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "cooc" in captured.out and "0.5000" in captured.out
    assert "slice   2/2" in captured.err  # progress per model and slice on stderr
    document = json.loads((out / "tiny-S2.json").read_text())
    assert [model["name"] for model in document["models"]] == ["cooc", "popular"]
    assert document["models"][0]["hit_rate"] == pytest.approx(0.5)
    assert (out / "tiny-S2.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_without_header_uses_column_indexes(tmp_path, capsys):
    path = tmp_path / "raw.tsv"
    path.write_text("".join(f"{ts}\t{key}\t{item}\n" for key, item, ts in TINY_LOG))
    code = main(["eval", str(path), "--columns", "1,2,0", "--delimiter", "\\t", "--no-header", "--slices", "2",
                 "--models", "cooc,gensim-online", "--out", str(tmp_path)])
    assert code == 0
    document = json.loads((tmp_path / "raw-S2.json").read_text())
    assert document["models"][0]["hits"] == 3 and document["models"][1]["name"] == "gensim-online"


def test_eval_rejects_unknown_models(tiny_csv, capsys):
    with pytest.raises(SystemExit):
        main(["eval", str(tiny_csv), "--columns", "user,item,ts", "--models", "cooc,word2vec"])
    assert "unknown model" in capsys.readouterr().err


def test_eval_runs_every_model_by_default(tiny_csv, tmp_path):
    pytest.importorskip("gensim")
    assert main(["eval", str(tiny_csv), "--columns", "user,item,ts", "--slices", "2", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "tiny-S2.json").read_text())
    assert [model["name"] for model in document["models"]] == [
        "streamer", "streamer-cosine", "cooc", "popular", "gensim-static", "gensim-online", "gensim-retrain"]
    assert all(model["pairs"] == 6 for model in document["models"])


def test_eval_with_a_catalog_file_reports_catalog_models_with_and_without(tiny_csv, tmp_path):
    catalog = tmp_path / "items.csv"
    catalog.write_text("id,tags\n" + "".join(f"{item},t{index % 2}|all\n" for index, item in enumerate("abcexz")))
    assert main(["eval", str(tiny_csv), "--columns", "user,item,ts", "--slices", "2", "--models", "cooc,cooc-attr",
                 "--catalog", str(catalog), "--catalog-columns", "id,tags", "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "tiny-S2.json").read_text())
    assert [model["name"] for model in document["models"]] == ["cooc", "cooc-attr"]
    assert document["catalog"] == [str(catalog), 6]
    cooc, filled = document["models"]
    assert filled["hits"] >= cooc["hits"] and filled["pairs"] == cooc["pairs"]


def test_eval_catalog_file_needs_its_columns(tiny_csv, tmp_path, capsys):
    assert main(["eval", str(tiny_csv), "--columns", "user,item,ts", "--models", "cooc",
                 "--catalog", str(tiny_csv), "--out", str(tmp_path)]) != 0
    assert "--catalog-columns" in capsys.readouterr().err
