"""Tiny random transformers models (torch) saved to folders, and padded batches to compare them on."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import torch
import transformers
from flax import nnx

ARCHITECTURES = (
    "bert",
    "distilbert",
    "roberta",
    "xlm-roberta",
    "mpnet",
    "modernbert",
    "qwen3",
    "gemma3_text",
    "t5",
    "mt5",
)
WITH_TOKEN_TYPES = ("bert", "roberta", "xlm-roberta")
VOCAB_SIZE = 100
MAX_POSITIONS = 64

_SHAPE = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=MAX_POSITIONS,
)
_CONFIG_CLASSES = {
    "bert": transformers.BertConfig,
    "roberta": transformers.RobertaConfig,
    "xlm-roberta": transformers.XLMRobertaConfig,
    "mpnet": transformers.MPNetConfig,
    "qwen3": transformers.Qwen3Config,
    "modernbert": transformers.ModernBertConfig,
    "gemma3_text": transformers.Gemma3TextConfig,
}
# Qwen3: grouped-query attention (2 key / value heads for 4 query heads) with heads of 16 (N * D = 64,
# twice the hidden size), and a padding id for padded_batch. ModernBERT: a global then a local layer whose
# window (4 positions either side) is shorter than padded_batch's rows; special ids within the vocabulary.
# Gemma 3: Qwen3's heads, a local then a global layer, a window of 8 positions (shorter than
# padded_batch's texts), a logit scale other than the head width.
_FAMILY_OPTIONS = {
    "qwen3": dict(num_key_value_heads=2, head_dim=16, pad_token_id=0),
    "modernbert": dict(
        local_attention=8, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2
    ),
    "gemma3_text": dict(
        num_key_value_heads=2,
        head_dim=16,
        pad_token_id=0,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=8,
        query_pre_attn_scalar=12,
    ),
}
# T5 and mT5 name their sizes their own way and have no position table; both tiny ones use T5's "relu"
# feed-forward layout (mT5's default "gated-gelu" is tested in test_t5.py). AutoModel would build the
# full encoder-decoder T5Model: the encoder-only classes are what sentence-t5 and GTR hold.
_T5_CONFIG_CLASSES = {"t5": transformers.T5Config, "mt5": transformers.MT5Config}
_ENCODER_MODEL_CLASSES = {"t5": transformers.T5EncoderModel, "mt5": transformers.MT5EncoderModel}
# T5 does not scale its attention logits by 1 / sqrt(D) (its initialisation folds that into W_q): noise of
# 0.2 on W_q and W_k gives logits up to 35, where the float32 rounding of the softmax alone reaches 1e-5.
_NOISE_SCALES = {"t5": 0.1, "mt5": 0.1}


def tiny_config(model_type: str, **overrides) -> transformers.PreTrainedConfig:
    """2 layers, hidden 32, 4 heads, intermediate 37, vocabulary 100, 64 positions (see _FAMILY_OPTIONS)."""
    if model_type == "distilbert":
        return transformers.DistilBertConfig(
            vocab_size=VOCAB_SIZE,
            dim=32,
            n_layers=2,
            n_heads=4,
            hidden_dim=37,
            max_position_embeddings=MAX_POSITIONS,
            **overrides,
        )
    if model_type in _T5_CONFIG_CLASSES:
        return _T5_CONFIG_CLASSES[model_type](
            vocab_size=VOCAB_SIZE,
            d_model=32,
            num_layers=2,
            num_heads=4,
            d_kv=8,
            d_ff=37,
            feed_forward_proj="relu",
            **overrides,
        )
    return _CONFIG_CLASSES[model_type](**_SHAPE, **{**_FAMILY_OPTIONS.get(model_type, {}), **overrides})


def perturb_(model: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Add Gaussian noise to every parameter, so that layer norms, biases and MPNet's relative bias are
    all distinct and a swapped or mis-mapped tensor changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return model


def torch_model_class(model_type: str):
    """The transformers class of a `model_type` encoder: AutoModel's, or T5's encoder-only model."""
    return _ENCODER_MODEL_CLASSES.get(model_type, transformers.AutoModel)


def new_torch_model(model_type: str, config: transformers.PreTrainedConfig) -> torch.nn.Module:
    """A randomly initialised `torch_model_class(model_type)` of `config`."""
    model_class = torch_model_class(model_type)
    return model_class.from_config(config) if model_class is transformers.AutoModel else model_class(config)


def save_tiny_model(folder: Path, model_type: str, model_class=transformers.AutoModel, **overrides):
    """A perturbed tiny `model_class` (by default the encoder of `torch_model_class`), saved with
    save_pretrained to `folder`, returned in eval mode."""
    torch.manual_seed(0)
    config = tiny_config(model_type, **overrides)
    if model_class is transformers.AutoModel:
        model = new_torch_model(model_type, config)
    else:
        model = model_class(config)
    perturb_(model, scale=_NOISE_SCALES.get(model_type, 0.2)).eval()
    model.save_pretrained(folder)
    return model


def padded_batch(pad_token_id: int, length: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """int32 input_ids, attention_mask and token_type_ids [4, length]: rows of different lengths, right
    padding, and one left-padded row (which moves RoBERTa / MPNet position ids)."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(3, VOCAB_SIZE, (4, length)).astype(np.int32)
    attention_mask = np.zeros((4, length), np.int32)
    attention_mask[0, :] = 1
    attention_mask[1, : length - 7] = 1
    attention_mask[2, :3] = 1
    attention_mask[3, 5:] = 1
    token_type_ids = (rng.random((4, length)) < 0.5).astype(np.int32) * attention_mask
    input_ids = np.where(attention_mask == 1, input_ids, pad_token_id).astype(np.int32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def batch_of_lengths(
    lengths, length: int, *, vocab_size: int, pad_token_id: int = 0, low: int = 1, left_padded=(), seed=0
) -> dict[str, np.ndarray]:
    """int32 input_ids and attention_mask [len(lengths), length]: random tokens in [low, vocab_size), padded
    with pad_token_id on the right, or on the left for the rows in `left_padded`."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(low, vocab_size, (len(lengths), length)).astype(np.int32)
    mask = (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
    for row in left_padded:
        mask[row] = mask[row, ::-1]
    return {"input_ids": np.where(mask == 1, ids, pad_token_id).astype(np.int32), "attention_mask": mask}


def jit_encode(encoder, **call_kwargs):
    """`encoder(*arrays, **call_kwargs)` jitted with the parameters passed as an argument: closing over
    them would make XLA embed (and constant-fold) every weight at compile time."""
    graphdef, state = nnx.split(encoder)
    encode = jax.jit(lambda state, *arrays: nnx.merge(graphdef, state)(*arrays, **call_kwargs))
    return lambda *arrays: encode(state, *arrays)


def torch_hidden_states(model: torch.nn.Module, batch: dict[str, np.ndarray], **kwargs) -> list[np.ndarray]:
    """All hidden states (embedding output first) of a transformers model, as float32 numpy arrays (a
    bfloat16 model's widened exactly)."""
    inputs = {key: torch.from_numpy(value.astype(np.int64)) for key, value in batch.items()}
    with torch.no_grad():
        output = model(**inputs, output_hidden_states=True, **kwargs)
    return [state.float().numpy() for state in output.hidden_states]
