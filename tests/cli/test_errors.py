"""User errors of every `jaxst` command: one line on stderr, exit status 2, before any model loads."""

import json

import pytest

from tests.cli.helpers import MODEL, cli_error

FIT = ["fit", "--model", MODEL, "--train", "train.tsv", "--output", "out"]
ENCODE = ["encode", MODEL, "--input", "texts.txt", "--output", "e.npy"]
EVALUATE = ["evaluate", MODEL, "--sts", "sts.tsv"]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (FIT + ["--batch-size", "x"], "jaxst fit: error: argument --batch-size: invalid int value: 'x'"),
        (
            FIT + ["--batch-size", "0"],
            "jaxst fit: error: argument --batch-size: must be an integer >= 1, got 0",
        ),
        (FIT + ["--epochs", "0"], "jaxst fit: error: argument --epochs: must be an integer >= 1, got 0"),
        (FIT + ["--epochs", "1.5"], "jaxst fit: error: argument --epochs: invalid int value: '1.5'"),
        (
            FIT + ["--evaluation-steps", "-1"],
            "jaxst fit: error: argument --evaluation-steps: must be an integer >= 0, got -1",
        ),
        (
            FIT + ["--warmup-steps", "-2"],
            "jaxst fit: error: argument --warmup-steps: must be an integer >= 0, got -2",
        ),
        (
            FIT + ["--warmup-ratio", "1.5"],
            "jaxst fit: error: argument --warmup-ratio: must be a finite number in [0, 1], got 1.5",
        ),
        (
            FIT + ["--max-seq-length", "0"],
            "jaxst fit: error: argument --max-seq-length: must be an integer >= 1, got 0",
        ),
        (FIT + ["--lr", "0"], "jaxst fit: error: argument --lr: must be a finite number > 0, got 0.0"),
        (FIT + ["--lr", "-0.5"], "jaxst fit: error: argument --lr: must be a finite number > 0, got -0.5"),
        (FIT + ["--lr", "nan"], "jaxst fit: error: argument --lr: must be a finite number > 0, got nan"),
        (FIT + ["--lr", "inf"], "jaxst fit: error: argument --lr: must be a finite number > 0, got inf"),
        (FIT + ["--lr", "fast"], "jaxst fit: error: argument --lr: invalid float value: 'fast'"),
        (
            FIT + ["--loss-args", "[1]"],
            "jaxst fit: error: argument --loss-args: must be a JSON object like '{\"scale\": 20}', got '[1]'",
        ),
        (
            ENCODE + ["--batch-size", "0"],
            "jaxst encode: error: argument --batch-size: must be an integer >= 1, got 0",
        ),
        (
            EVALUATE + ["--batch-size", "-3"],
            "jaxst evaluate: error: argument --batch-size: must be an integer >= 1, got -3",
        ),
        (
            EVALUATE + ["--batch-size", "x"],
            "jaxst evaluate: error: argument --batch-size: invalid int value: 'x'",
        ),
        (
            ["demo", "--train-pairs", "0"],
            "jaxst demo: error: argument --train-pairs: must be an integer >= 1, got 0",
        ),
        (["demo", "--lr", "0"], "jaxst demo: error: argument --lr: must be a finite number > 0, got 0.0"),
        (
            ["compare", MODEL, "--atol", "-1"],
            "jaxst compare: error: argument --atol: must be a finite number >= 0, got -1.0",
        ),
    ],
)
def test_a_bad_option_is_one_line_naming_it(argv, expected, capsys):
    assert cli_error(capsys, *argv) == expected


def test_an_unknown_command_is_one_line(capsys):
    assert cli_error(capsys, "nope").startswith("jaxst: error: argument COMMAND: invalid choice: 'nope'")


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("batch_size", "3", "must be an integer >= 1, got '3'"),
        ("batch_size", 3.0, "must be an integer >= 1, got 3.0"),
        ("batch_size", True, "must be an integer >= 1, got True"),
        ("batch_size", 0, "must be an integer >= 1, got 0"),
        ("epochs", "3", "must be an integer >= 1, got '3'"),
        ("epochs", 2.5, "must be an integer >= 1, got 2.5"),
        ("evaluation_steps", -1, "must be an integer >= 0, got -1"),
        ("warmup_steps", -1, "must be an integer >= 0, got -1"),
        ("warmup_ratio", 2, "must be a finite number in [0, 1], got 2"),
        ("max_seq_length", 0, "must be an integer >= 1, got 0"),
        ("lr", 0, "must be a finite number > 0, got 0"),
        ("lr", "2e-5", "must be a finite number > 0, got '2e-5'"),
        ("lr", float("nan"), "must be a finite number > 0, got nan"),
        ("seed", "42", "must be an integer >= 0, got '42'"),
        ("model", 123, "must be a string, got 123"),
        ("loss_args", [1], "must be a mapping of keyword arguments, got [1]"),
        ("text_columns", "sentence1", "must be a list of column names, got 'sentence1'"),
        ("evaluator", "nope", "must be one of sts, binary, triplets, got 'nope'"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_range_is_named(key, value, problem, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({key: value}))
    assert cli_error(capsys, "fit", "--config", config) == f"jaxst fit: error: {config}: {key} {problem}"


def test_a_yaml_config_value_of_the_wrong_type_is_named(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: '3'\n")
    assert cli_error(capsys, "fit", "--config", config) == (
        f"jaxst fit: error: {config}: epochs must be an integer >= 1, got '3'"
    )


@pytest.mark.parametrize(
    "argv, option, what",
    [
        (["encode", "no_model", "--input", "no.txt", "--output"], "--output", "e.npy"),
        (["fit", "--model", "no_model", "--train", "no.tsv", "--output"], "--output", "out"),
        (["evaluate", "no_model", "--sts", "no.tsv", "--json"], "--json", "m.json"),
        (["compare", "no_model", "--json"], "--json", "table.json"),
        (["demo", "--model", "no_model", "--output"], "--output", "out"),
    ],
)
def test_an_output_in_a_missing_folder_fails_before_anything_loads(argv, option, what, tmp_path, capsys):
    path = tmp_path / "missing" / what
    command = argv[0]
    assert cli_error(capsys, *argv, path) == (
        f"jaxst {command}: error: {option} {path}: the folder {tmp_path / 'missing'} does not exist"
    )


def test_an_output_that_is_a_folder_or_a_file_is_refused(tmp_path, capsys):
    assert cli_error(capsys, "encode", "no_model", "--input", "no.txt", "--output", tmp_path) == (
        f"jaxst encode: error: --output {tmp_path} is a folder; give a file name"
    )
    (tmp_path / "file").write_text("")
    assert cli_error(capsys, "fit", "--model", "m", "--train", "t.tsv", "--output", tmp_path / "file") == (
        f"jaxst fit: error: --output {tmp_path / 'file'} is a file; give a folder"
    )


def write_pairs(path, rows):
    path.write_text(
        "".join(f"{a}\t{b}\t{s}\n" for a, b, s in [("s1", "s2", "score"), *rows]), encoding="utf-8"
    )
    return path


def test_a_max_seq_length_beyond_the_models_positions_names_both(tmp_path, capsys):
    train = write_pairs(tmp_path / "train.tsv", [("a", "b", 0.5), ("c", "d", 0.1)])
    line = cli_error(
        capsys,
        "fit",
        "--model",
        MODEL,
        "--train",
        train,
        "--output",
        tmp_path / "o",
        "--max-seq-length",
        1000,
    )
    assert line.startswith("jaxst fit: error: --max-seq-length 1000: ") and "512" in line, line
    assert not (tmp_path / "o").exists()


def test_a_multi_line_library_error_while_loading_the_model_prints_as_one_line(tmp_path, capsys, monkeypatch):
    import jaxst

    def refuse(path, dtype):
        raise ValueError("config.json names no architecture\nknown: bert, mpnet")

    monkeypatch.setattr(jaxst, "SentenceTransformer", refuse)
    (tmp_path / "t.txt").write_text("hello\n")
    assert cli_error(
        capsys, "encode", tmp_path, "--input", tmp_path / "t.txt", "--output", tmp_path / "e.npy"
    ) == (
        f"jaxst encode: error: cannot load the model in {tmp_path}: "
        "config.json names no architecture; known: bert, mpnet"
    )


def test_a_broken_saved_dataset_is_one_line(tmp_path, capsys):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_dict({"a": ["x", "y"], "b": ["p", "q"]}).save_to_disk(str(folder))
    capsys.readouterr()  # the progress bar of saving
    (folder / "state.json").write_text("{")
    line = cli_error(capsys, "fit", "--model", "m", "--train", folder, "--output", tmp_path / "o")
    assert line.startswith(f"jaxst fit: error: {folder}: not a readable saved Hugging Face dataset ("), line


def test_a_metrics_file_that_cannot_be_written_is_one_line(tmp_path, capsys):
    sts = write_pairs(
        tmp_path / "sts.tsv", [("A cat.", "A dog.", 1.0), ("A car.", "A cat.", 0.2), ("Hi.", "Hello.", 4.0)]
    )
    assert cli_error(capsys, "evaluate", MODEL, "--sts", sts, "--json", "/dev/full") == (
        "jaxst evaluate: error: cannot write /dev/full: No space left on device"
    )


def test_binary_labels_other_than_0_and_1_are_refused(tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.tsv", [("a", "b", 1), ("c", "d", 0.5)])
    line = cli_error(capsys, "evaluate", "no_model", "--binary", pairs)
    assert line.startswith(f"jaxst evaluate: error: {pairs}: labels must be 0 or 1"), line


def test_column_options_do_not_apply_to_retrieval(tmp_path, capsys):
    assert cli_error(capsys, "evaluate", "m", "--ir", "q.tsv", "c.tsv", "r.tsv", "--split", "test") == (
        "jaxst evaluate: error: "
        "--text-columns, --label-column and --split apply to --sts, --binary, --triplets"
    )
