"""Encode a text file (one text per line) into a .npy array of sentence embeddings.

Lines end at "\n" or "\r\n" only, so the output has one row per input line: an empty line is an empty
text, a final newline adds no line, and form feeds or Unicode line separators stay inside their text.
"""

from __future__ import annotations

import argparse
import io

import numpy as np

from jaxst.cli.errors import CliError, load_model
from jaxst.cli.files import output_path, read_text, text_lines, write_bytes
from jaxst.cli.options import COUNT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a sentence-transformers or Hugging Face model folder")
    parser.add_argument("--input", required=True, help="UTF-8 text file, one text per line")
    parser.add_argument("--output", required=True, help="where to write the embeddings (.npy, [N, D])")
    parser.add_argument("--batch-size", type=COUNT, default=32, help="texts per batch (default 32)")
    parser.add_argument("--normalize", action="store_true", help="L2-normalize the embeddings")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16"], help="encoder compute dtype"
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "int8", "uint8", "binary", "ubinary"],
        help="output precision (quantized as sentence-transformers' quantize_embeddings)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    output = output_path(args.output, "--output")
    texts = text_lines(read_text(args.input, "input file"))
    if not texts:
        raise CliError(f"input file {args.input} holds no lines to encode")
    model = load_model(args.model, args.dtype)
    try:
        embeddings = model.encode(
            texts,
            batch_size=args.batch_size,
            normalize_embeddings=args.normalize,
            precision=args.precision,
            show_progress_bar=not args.no_progress,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    buffer = io.BytesIO()
    np.save(buffer, embeddings)
    write_bytes(output, buffer.getvalue())
    print(f"wrote {embeddings.shape[0]} embeddings of dimension {embeddings.shape[1]} to {output}")
    return 0
