"""Embedding quantization to int8 / uint8 / binary / ubinary, bit for bit as sentence-transformers does it.

Host-side NumPy, applied after encoding (as `SentenceTransformer.encode(precision=...)` does):

- int8 / uint8 (scalar quantization, per dimension): `ranges` [2, D] holds each dimension's min and max,
  from `ranges`, else from `calibration_embeddings`, else from the embeddings themselves.
  `step = (max - min) / 255` (1 where max == min); `q = clip(floor((x - min) / step), 0, 255)`;
  uint8 keeps q, int8 stores `q - 128`. All arithmetic in float32, as sentence-transformers.
- binary / ubinary: one bit per dimension, `x > 0`, packed big-endian into bytes (`np.packbits`):
  [N, D] -> [N, ceil(D / 8)]; ubinary keeps the uint8 bytes, binary stores `byte - 128` as int8.

A list of 2-D matrices (token embeddings, one [T_i, D] matrix per text) is quantized matrix by matrix with
one shared set of ranges, computed from all rows of all matrices, as sentence-transformers does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def quantization_ranges(
    embeddings: np.ndarray, precision: str, calibration_embeddings: np.ndarray | None = None
) -> np.ndarray:
    """Per-dimension [min; max] ranges [2, D] from the calibration embeddings, else from `embeddings`.

    Raises:
        ValueError: without calibration embeddings, when `embeddings` holds a single row.
    """
    if calibration_embeddings is None:
        if embeddings.ndim == 1 or embeddings.shape[0] == 1:
            raise ValueError(
                f"Cannot compute {precision} quantization ranges from a single embedding: pass `ranges` or "
                "`calibration_embeddings` from a representative set of embeddings."
            )
        if embeddings.shape[0] < 100:
            logger.warning(
                "Computing %s quantization ranges from only %d embeddings; ranges from more embeddings "
                "(or `calibration_embeddings`) are more stable.",
                precision,
                embeddings.shape[0],
            )
        calibration_embeddings = embeddings
    return np.vstack((np.min(calibration_embeddings, axis=0), np.max(calibration_embeddings, axis=0)))


def quantize_embeddings(
    embeddings: np.ndarray | Sequence[np.ndarray],
    precision: str,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Quantizes float embeddings to `precision` (see the module docstring for the formulas).

    Args:
        embeddings: [N, D] or [D] float embeddings, or a list of [T_i, D] matrices (or of [D] rows).
        precision: one of "float32", "int8", "uint8", "binary", "ubinary".
        ranges: [2, D] per-dimension min and max for int8 / uint8; computed when None.
        calibration_embeddings: [M, D] embeddings to compute the int8 / uint8 ranges from.

    Returns:
        float32 / int8 / uint8 array of the same leading shape ([..., ceil(D / 8)] for the binary kinds),
        or a list of such matrices for a list of matrices.

    Raises:
        ValueError: for an unknown precision, integer input, or int8 / uint8 ranges from a single row.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Precision {precision!r} is not supported, must be one of {PRECISIONS}.")
    if isinstance(embeddings, (list, tuple)):
        if not embeddings:
            return []
        matrices = [np.asarray(e) for e in embeddings]
        if matrices[0].ndim == 2:
            if precision.endswith("int8") and ranges is None:
                calibration = (
                    np.concatenate(matrices, axis=0)
                    if calibration_embeddings is None
                    else calibration_embeddings
                )
                if len(calibration):
                    ranges = quantization_ranges(calibration, precision, calibration_embeddings)
            return [quantize_embeddings(m, precision, ranges, calibration_embeddings) for m in matrices]
        embeddings = np.stack(matrices)
    embeddings = np.asarray(embeddings)
    if embeddings.dtype in (np.int8, np.uint8):
        raise ValueError("Embeddings to quantize must be float, not int8 or uint8.")

    if embeddings.ndim == 2 and embeddings.shape[0] == 0:
        dim = embeddings.shape[1]
        out_dim = dim if precision.endswith("int8") or precision == "float32" else (dim + 7) // 8
        return np.zeros((0, out_dim), dtype=_output_dtype(precision))

    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = quantization_ranges(embeddings, precision, calibration_embeddings)
        ranges = np.asarray(ranges).astype(np.float32, copy=False)
        starts = ranges[0]
        steps = (ranges[1] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        levels = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return levels.astype(np.uint8) if precision == "uint8" else (levels - 128).astype(np.int8)
    packed = np.packbits(embeddings > 0, axis=-1)
    if precision == "ubinary":
        return packed
    return (packed.astype(np.int16) - 128).astype(np.int8)


def _output_dtype(precision: str) -> type:
    return {
        "float32": np.float32,
        "int8": np.int8,
        "uint8": np.uint8,
        "binary": np.int8,
        "ubinary": np.uint8,
    }[precision]
