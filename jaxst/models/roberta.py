"""RoBERTa and XLM-RoBERTa encoders: transformers' `RobertaModel` / `XLMRobertaModel` (identical maths)."""

from __future__ import annotations

from typing import Any

from jaxst.models.bert import BertEncoder


class RobertaEncoder(BertEncoder):
    """RoBERTa / XLM-R: BERT layers; positions count from pad_token_id + 1 over non-padding input ids."""

    @staticmethod
    def position_padding_idx(config: Any) -> int | None:
        return config.pad_token_id
