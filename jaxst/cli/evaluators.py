"""Evaluators built from data files, shared by `jaxst evaluate` and `jaxst fit`.

Kinds: sts (two texts and a score), binary (two texts and a 0/1 label), triplets (anchor, positive,
negative), ir (queries, corpus and qrels files: id + text, id + text, query id + corpus id).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jaxst.cli.data_files import Columns, read_examples, read_table, text_value
from jaxst.cli.errors import CliError

FILE_KINDS = ("sts", "binary", "triplets")


def columns_of(
    path: str, texts: int, labelled: bool, columns: Columns | None
) -> tuple[list[list[str]], list]:
    """The text columns and labels of a file, checked against what the evaluator needs."""
    examples = read_examples(path, columns)
    have_labels = examples[0].label is not None
    if len(examples[0].texts) != texts or have_labels != labelled:
        need = f"{texts} text columns" + (" and a label/score column" if labelled else " and no label column")
        got = f"{len(examples[0].texts)} text columns" + (" and a label column" if have_labels else "")
        raise CliError(
            f"{path}: this evaluator needs {need}; the file has {got} "
            "(name them with --text-columns and --label-column)"
        )
    columns = [list(c) for c in zip(*(e.texts for e in examples), strict=True)]
    return columns, [e.label for e in examples]


def file_evaluator(kind: str, path: str, columns: Columns | None = None, name: str | None = None):
    """An evaluator of `kind` (FILE_KINDS) over the rows of `path`, read as `columns` says.

    Scores and labels go to the evaluator as the file gives them (Spearman and Pearson ignore the
    scale of STS scores; binary labels must be 0 or 1, which the evaluator checks).
    """
    from jaxst import evaluation

    if kind not in FILE_KINDS:
        raise CliError(f"unknown evaluator {kind!r}; known: {', '.join(FILE_KINDS)}")
    name = name or data_name(path)
    try:
        if kind == "triplets":
            (anchors, positives, negatives), _ = columns_of(path, 3, False, columns)
            return evaluation.TripletEvaluator(anchors, positives, negatives, name=name)
        (s1, s2), labels = columns_of(path, 2, True, columns)
        if kind == "sts":
            return evaluation.EmbeddingSimilarityEvaluator(s1, s2, [float(v) for v in labels], name=name)
        return evaluation.BinaryClassificationEvaluator(s1, s2, labels, name=name)
    except ValueError as error:
        raise CliError(f"{path}: {error}") from None


def data_name(path: str) -> str:
    """A data file's name without its suffixes: "dev" for dev.tsv, "stsbenchmark" for stsbenchmark.tsv.gz."""
    p = Path(path)
    return Path(p.stem).stem if p.suffix.lower() == ".gz" else p.stem


def id_text_pairs(path: str, what: str) -> dict[str, str]:
    """{id: text} of a two-column file; the ids as strings, the texts checked to be strings."""
    table = read_table(path)
    if len(table.columns) != 2:
        raise CliError(f"{path}: {what} need two columns (id, text), the header names {len(table.columns)}")
    ids, texts = table.columns
    return {str(row[ids]): text_value(table, index, texts) for index, row in enumerate(table.rows)}


def ir_evaluator(queries: str, corpus: str, qrels: str, name: str = "ir"):
    """InformationRetrievalEvaluator from queries (id, text), corpus (id, text) and qrels (qid, cid) files."""
    from jaxst import evaluation

    relevant: dict[str, set[str]] = {}
    table = read_table(qrels)
    if len(table.columns) < 2:
        raise CliError(f"{qrels}: qrels need two columns (query id, corpus id)")
    query_ids, corpus_ids = table.columns[:2]
    for row in table.rows:
        relevant.setdefault(str(row[query_ids]), set()).add(str(row[corpus_ids]))
    try:
        return evaluation.InformationRetrievalEvaluator(
            id_text_pairs(queries, "queries"), id_text_pairs(corpus, "corpus documents"), relevant, name=name
        )
    except ValueError as error:
        raise CliError(f"retrieval data {queries}, {corpus}, {qrels}: {error}") from None


def format_metrics(metrics: dict, keys: Sequence[str] | None = None) -> str:
    keys = list(keys or metrics)
    width = max(len(k) for k in keys)
    return "\n".join(f"{k:<{width}}  {float(metrics[k]):.6f}" for k in keys)
