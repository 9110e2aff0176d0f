"""How the command line reads its inputs: text lines, UTF-8, data files (gzip, types, columns, splits)."""

import csv
import gzip
import json
from importlib import resources

import numpy as np
import pytest

from jaxst import SentenceTransformer
from jaxst.cli.data_files import Columns, read_examples
from jaxst.cli.files import text_lines
from jaxst.data import STSB_SPLITS, load_stsb
from tests.cli.helpers import MODEL, cli_error, run_cli

SHIPPED_STSB = str(resources.files("jaxst.data") / "stsbenchmark.tsv.gz")
STSB_COLUMNS = ["split", "genre", "dataset", "year", "sid", "score", "sentence1", "sentence2"]


@pytest.fixture(scope="module")
def model():
    return SentenceTransformer(MODEL)


@pytest.mark.parametrize(
    "text, lines",
    [
        ("", []),
        ("\n", [""]),
        ("a\nb", ["a", "b"]),
        ("a\nb\n", ["a", "b"]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b"]),
        ("a\n\n", ["a", ""]),
        ("a\x0cb\u2028c\x85d\x1ee\rf\n", ["a\x0cb\u2028c\x85d\x1ee\rf"]),
    ],
)
def test_text_lines_split_on_newline_and_crlf_only(text, lines):
    assert text_lines(text) == lines


def test_encode_writes_one_row_per_input_line(model, tmp_path, capsys):
    texts = ["A man plays a guitar.", "A form\x0cfeed.", "", "A line\u2028separator.", "The last line."]
    path = tmp_path / "texts.txt"
    path.write_bytes("\r\n".join(texts).encode("utf-8") + b"\r\n")
    status, out, err = run_cli(capsys, "encode", MODEL, "--input", path, "--output", tmp_path / "e.npy")
    assert status == 0, err
    assert "wrote 5 embeddings" in out
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), model.encode(texts))


def test_encode_refuses_an_empty_input(tmp_path, capsys):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert cli_error(
        capsys, "encode", MODEL, "--input", tmp_path / "empty.txt", "--output", tmp_path / "e"
    ) == (f"jaxst encode: error: input file {tmp_path / 'empty.txt'} holds no lines to encode")


def latin1(path, text):
    data = text.encode("latin-1")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize(
    "command, name, text",
    [
        ("encode", "texts.txt", "fine\nun caf\xe9\n"),
        ("fit", "train.tsv", "s1\ts2\tscore\nd\xe9j\xe0\tvu\t0.1\n"),
        ("evaluate", "sts.csv.gz", "s1,s2,score\nd\xe9j\xe0,vu,0.1\n"),
        ("config", "c.yaml", "epochs: 1\nmodel: caf\xe9\n"),
    ],
)
def test_a_file_that_is_not_utf8_names_file_and_line(command, name, text, tmp_path, capsys):
    path = latin1(tmp_path / name, text)
    argv = {
        "encode": ["encode", MODEL, "--input", path, "--output", tmp_path / "e.npy"],
        "fit": ["fit", "--model", MODEL, "--train", path, "--output", tmp_path / "o"],
        "evaluate": ["evaluate", MODEL, "--sts", path],
        "config": ["fit", "--config", path],
    }[command]
    shown = "jaxst fit" if command == "config" else f"jaxst {command}"
    assert cli_error(capsys, *argv) == (
        f"{shown}: error: {path}, line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    )


@pytest.mark.parametrize(
    "name, content, shown",
    [
        ("sts.tsv", "s1\ts2\tscore\na\tb\t0.5\nc\td\tnan\n", '"nan"'),
        ("sts.csv", "s1,s2,score\na,b,0.5\n\nc,d,-inf\n", '"-inf"'),
        ("sts.jsonl", '{"s1": "a", "s2": "b", "score": 0.5}\n{"s1": "c", "s2": "d", "score": NaN}\n', "NaN"),
    ],
)
def test_a_label_that_is_not_finite_names_file_line_and_column(name, content, shown, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    line = 4 if name.endswith(".csv") else 3 if name.endswith(".tsv") else 2
    expected = f"{path}, line {line}, column 'score': a label must be a finite number, got {shown}"
    assert cli_error(capsys, "evaluate", "no_model", "--sts", path) == f"jaxst evaluate: error: {expected}"
    assert cli_error(capsys, "fit", "--model", "m", "--train", path, "--output", tmp_path / "o") == (
        f"jaxst fit: error: {expected}"
    )


@pytest.mark.parametrize(
    "value, column, message",
    [
        ('null, "score": 0.5', "s2", "a text must be a string, got null"),
        ('123, "score": 0.5', "s2", "a text must be a string, got 123"),
        ('["x"], "score": 0.5', "s2", 'a text must be a string, got ["x"]'),
        ('"b", "score": "0.5"', "score", 'a label must be a finite number, got "0.5"'),
        ('"b", "score": null', "score", "a label must be a finite number, got null"),
    ],
)
def test_jsonl_texts_must_be_strings_and_labels_numbers(value, column, message, tmp_path, capsys):
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"s1": "a", "s2": "b", "score": 1}\n{"s1": "c", "s2": ' + value + "}\n", encoding="utf-8"
    )
    assert cli_error(capsys, "fit", "--model", "m", "--train", path, "--output", tmp_path / "o") == (
        f"jaxst fit: error: {path}, line 2, column {column!r}: {message}"
    )


def test_a_saved_dataset_text_must_be_a_string(tmp_path, capsys):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"a": ["x", "y"], "b": ["p", None]}).save_to_disk(str(folder))
    capsys.readouterr()  # the progress bar of saving
    assert cli_error(capsys, "fit", "--model", "m", "--train", folder, "--output", tmp_path / "o") == (
        f"jaxst fit: error: {folder}, row 2, column 'b': a text must be a string, got null"
    )


def as_texts_and_labels(examples):
    return [(e.texts, e.label) for e in examples]


def test_gzip_data_files_read_as_plain_ones(tmp_path):
    plain = {
        "d.tsv": "s1\ts2\tscore\nA cat.\tA dog.\t0.5\nHi.\tHello.\t1\n",
        "d.csv": 's1,s2,score\n"A cat, sitting.",A dog.,0.5\nHi.,Hello.,1\n',
        "d.jsonl": '{"s1": "A cat.", "s2": "A dog.", "score": 0.5}\n'
        '{"s1": "Hi.", "s2": "Hello.", "score": 1}\n',
    }
    for name, text in plain.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(text.encode("utf-8")))
        expected = as_texts_and_labels(read_examples(str(tmp_path / name)))
        assert as_texts_and_labels(read_examples(str(tmp_path / f"{name}.gz"))) == expected
        assert expected[1] == (["Hi.", "Hello."], 1)


def test_a_corrupt_gzip_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "sts.tsv.gz"
    path.write_bytes(gzip.compress(b"s1\ts2\tscore\na\tb\t0.5\n")[:-12])
    line = cli_error(capsys, "evaluate", "no_model", "--sts", path)
    assert line.startswith(f"jaxst evaluate: error: {path}: not a readable gzip file ("), line


def shipped_rows():
    with gzip.open(SHIPPED_STSB, "rt", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.parametrize("split", STSB_SPLITS)
def test_the_shipped_stsb_file_reads_by_columns_and_split(split):
    columns = Columns(texts=("sentence1", "sentence2"), label="score", split=split)
    examples = read_examples(SHIPPED_STSB, columns)
    pairs = load_stsb(split)
    assert len(examples) == len(pairs)
    assert [e.texts for e in examples] == [[a, b] for a, b, _ in pairs]
    assert [e.label / 5 for e in examples] == pytest.approx([s for _, _, s in pairs], abs=1e-12)


def test_columns_are_picked_by_name_or_by_the_convention(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("id\tsplit\tb\tscore\ta\n1\ttrain\tB1\t0.5\tA1\n2\ttest\tB2\t1\tA2\n", encoding="utf-8")
    named = Columns(texts=("a", "b"), label="id", split="test")
    assert as_texts_and_labels(read_examples(str(path), named)) == [(["A2", "B2"], 2)]
    assert as_texts_and_labels(read_examples(str(path), Columns(split="train"))) == [(["1", "B1", "A1"], 0.5)]
    assert as_texts_and_labels(read_examples(str(path), Columns(texts=("a",)))) == [
        (["A1"], 0.5),
        (["A2"], 1),
    ]


@pytest.fixture
def stsb_slice(tmp_path):
    """The shipped STS-B file's header, its first 8 train rows and its first 16 test rows, gzipped."""
    header, *rows = shipped_rows()
    train, test = [r for r in rows if r[0] == "train"][:8], [r for r in rows if r[0] == "test"][:16]
    path = tmp_path / "slice.tsv.gz"
    path.write_bytes(gzip.compress("".join("\t".join(r) + "\n" for r in [header, *train, *test]).encode()))
    return path


def test_evaluate_reads_named_columns_of_one_split_of_a_gzip_file(model, stsb_slice, tmp_path, capsys):
    from jaxst.evaluation import EmbeddingSimilarityEvaluator

    status, out, err = run_cli(
        capsys,
        "evaluate",
        MODEL,
        "--sts",
        stsb_slice,
        "--text-columns",
        "sentence1",
        "sentence2",
        "--score-column",
        "score",
        "--split",
        "test",
        "--json",
        tmp_path / "m.json",
    )
    assert status == 0, err
    pairs = load_stsb("test")[:16]
    expected = EmbeddingSimilarityEvaluator(*map(list, zip(*pairs, strict=True)), name="slice")(model)
    assert f"slice_spearman_cosine  {expected['slice_spearman_cosine']:.6f}" in out
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "options, problem",
    [
        (["--split", "dev"], "no rows of split 'dev'; the splits: test, train"),
        (
            ["--text-columns", "sentence1", "sentence3"],
            f"no column 'sentence3'; the file's columns: {', '.join(STSB_COLUMNS)}",
        ),
        (
            ["--score-column", "similarity"],
            f"no column 'similarity'; the file's columns: {', '.join(STSB_COLUMNS)}",
        ),
    ],
)
def test_evaluate_names_an_unknown_split_or_column(options, problem, stsb_slice, capsys):
    assert cli_error(capsys, "evaluate", "no_model", "--sts", stsb_slice, *options) == (
        f"jaxst evaluate: error: {stsb_slice}: {problem}"
    )


def test_a_split_needs_a_split_column(tmp_path, capsys):
    path = tmp_path / "sts.tsv"
    path.write_text("s1\ts2\tscore\na\tb\t0.5\n", encoding="utf-8")
    assert cli_error(capsys, "evaluate", "no_model", "--sts", path, "--split", "test") == (
        f"jaxst evaluate: error: {path}: "
        "no 'split' column to pick the split 'test' from; the columns: s1, s2, score"
    )


@pytest.mark.parametrize(
    "options, problem",
    [
        (["--train-split", "dev"], "no rows of split 'dev'; the splits: test, train"),
        (
            ["--train-split", "train", "--text-columns", "sentence3"],
            "no column 'sentence3'; the file's columns",
        ),
        (["--train-split", "train", "--label-column", "label"], "no column 'label'; the file's columns"),
        (["--train-split", "train", "--eval", "EVAL", "--eval-split", "dev"], "no rows of split 'dev'"),
    ],
)
def test_fit_reads_train_and_eval_files_with_the_same_column_options(options, problem, stsb_slice, capsys):
    options = [str(stsb_slice) if o == "EVAL" else o for o in options]
    line = cli_error(
        capsys, "fit", "--model", "m", "--train", stsb_slice, "--output", stsb_slice.parent / "o", *options
    )
    assert line.startswith(f"jaxst fit: error: {stsb_slice}: {problem}"), line
