"""Evaluators built from data files, shared by `jaxst evaluate` and `jaxst fit`.

Kinds: sts (two texts and a score), binary (two texts and a 0/1 label), triplets (anchor, positive,
negative), ir (queries, corpus and qrels files: id + text, id + text, query id + corpus id).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jaxst.cli.data_files import read_examples, read_rows
from jaxst.cli.errors import CliError

FILE_KINDS = ("sts", "binary", "triplets")


def columns_of(path: str, texts: int, labelled: bool) -> tuple[list[list[str]], list]:
    """The text columns and labels of a file, checked against what the evaluator needs."""
    examples = read_examples(path)
    have_labels = examples[0].label is not None
    if len(examples[0].texts) != texts or have_labels != labelled:
        need = f"{texts} text columns" + (" and a label/score column" if labelled else " and no label column")
        raise CliError(
            f"{path}: this evaluator needs {need}; the file has {len(examples[0].texts)} text columns"
        )
    columns = [list(c) for c in zip(*(e.texts for e in examples), strict=True)]
    return columns, [e.label for e in examples]


def file_evaluator(kind: str, path: str, name: str | None = None):
    """An evaluator of `kind` (FILE_KINDS) over the rows of `path`."""
    from jaxst import evaluation

    name = name or Path(path).stem
    if kind == "sts":
        (s1, s2), scores = columns_of(path, 2, True)
        return evaluation.EmbeddingSimilarityEvaluator(s1, s2, [float(s) for s in scores], name=name)
    if kind == "binary":
        (s1, s2), labels = columns_of(path, 2, True)
        return evaluation.BinaryClassificationEvaluator(s1, s2, [int(v) for v in labels], name=name)
    if kind == "triplets":
        (anchors, positives, negatives), _ = columns_of(path, 3, False)
        return evaluation.TripletEvaluator(anchors, positives, negatives, name=name)
    raise CliError(f"unknown evaluator {kind!r}; known: {', '.join(FILE_KINDS)}")


def id_text_pairs(path: str, what: str) -> dict[str, str]:
    header, rows = read_rows(path)
    if len(header) != 2:
        raise CliError(f"{path}: {what} need two columns (id, text), the header names {len(header)}")
    return {str(row[header[0]]): str(row[header[1]]) for row in rows}


def ir_evaluator(queries: str, corpus: str, qrels: str, name: str = "ir"):
    """InformationRetrievalEvaluator from queries (id, text), corpus (id, text) and qrels (qid, cid) files."""
    from jaxst import evaluation

    relevant: dict[str, set[str]] = {}
    header, rows = read_rows(qrels)
    if len(header) < 2:
        raise CliError(f"{qrels}: qrels need two columns (query id, corpus id)")
    for row in rows:
        relevant.setdefault(str(row[header[0]]), set()).add(str(row[header[1]]))
    return evaluation.InformationRetrievalEvaluator(
        id_text_pairs(queries, "queries"), id_text_pairs(corpus, "corpus documents"), relevant, name=name
    )


def format_metrics(metrics: dict, keys: Sequence[str] | None = None) -> str:
    keys = list(keys or metrics)
    width = max(len(k) for k in keys)
    return "\n".join(f"{k:<{width}}  {float(metrics[k]):.6f}" for k in keys)
