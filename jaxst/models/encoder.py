"""The encoder every family shares: embeddings, a stack of layers under one attention mask, hidden states.

A family is a subclass that builds its embeddings and layers (`post_norm.PostNormEncoder` for the
BERT-style families, `pre_norm.PreNormDecoder` for the Qwen3 and Gemma 3 decoders), reads its
`EncoderSpec` from a transformers config and names its checkpoint keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from jaxst.io.hf import KeyMapping, KeyTable
from jaxst.models.activation_sharding import split_batch
from jaxst.models.attention import AttentionInputs, TextMask, text_attention_mask
from jaxst.models.fused_attention import choose_kernel
from jaxst.models.layers import draw_dropout_bits, dropout, seed_dropout_keys
from jaxst.models.scan import run_layers
from jaxst.models.spec import EncoderSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

COMPUTE_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
# Gradient checkpointing (remat): the `jax.checkpoint` policies a layer may run under, by name. A policy
# says which of the layer's intermediate values the forward pass keeps for the backward pass; the backward
# pass recomputes the others from the layer's input. The default keeps the outputs of the matmuls with
# weights (x W: no batch dimension in the dot) and recomputes attention, norms, activations and dropout.
REMAT_POLICIES = {
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
}
DEFAULT_REMAT_POLICY = "dots_with_no_batch_dims_saveable"
# How a family's parameters shard over a training mesh (`jaxst.training.sharding`): a regular expression
# over a parameter's path within the encoder ("layers/3/query/kernel", re.fullmatch), and the logical axis
# of each of its dimensions: "vocab", "embed" (the hidden size), "heads" (query / key / value units),
# "mlp" (the MLP's hidden units) or None. The first rule that matches applies.
PartitionRules = Sequence[tuple[str, tuple[str | None, ...]]]


class TransformerEncoder(nnx.Module):
    """Base of the encoders: `encoder(input_ids, attention_mask)` -> last hidden state [B, T, H].

    A family subclass builds, after `super().__init__`, the modules `embeddings` (whose `max_length` is
    the longest sequence it takes) and `layers`, each layer called as `layer(hidden, attention_inputs,
    dropout_bits)` and saying its `dropout_shapes(batch, length)`. It reads its spec from a transformers
    config (`spec_from_config`), names its checkpoint keys (`key_table` and the class attributes below),
    and fills in the hooks `embed`, `attention_inputs` and `last_hidden_state`.

    Attributes:
        spec: the EncoderSpec (static: part of the graphdef).
        dtype: compute dtype, float32 or bfloat16 (static); parameters are float32.
        remat_policy: None, or gradient checkpointing: each layer runs under `jax.checkpoint` with the
            policy of this name in `REMAT_POLICIES` (static; see `remat_graphdef`). The outputs and
            gradients are the same; the backward pass recomputes what the policy does not keep.
        attention_implementation: "auto" (default), "xla", "pallas" or "cudnn" (static; see
            `attention_graphdef` and `fused_attention.choose_kernel`): "auto" runs Pallas' fused kernels
            (GPU flash attention, TPU splash attention) on GPU and TPU, which take the texts' segment ids
            instead of a [B, 1, T, T] mask, and XLA's attention on CPU (set with `use_attention`). The
            XLA path serves whatever a kernel cannot express (see `attention.attention`): T5's and
            MPNet's relative bias, the sliding windows (Pallas), float32 (cuDNN).
        attention_dropout: "exact" (default) or "skip" (static): no fused kernel drops attention
            probabilities. "exact" keeps sentence-transformers' dropout on them in train mode (the XLA
            path; with a named kernel, an error); "skip" trains without it on the fused kernel.
        scan_layers: whether the layers run under `jax.lax.scan` (static; set with `use_scan_layers`;
            see `jaxst.models.scan`): a repeated layer (or block of layers) is traced and compiled
            once instead of once per layer. Outputs (to float32 rounding), gradients, dropout and the
            parameter pytree are the loop's. Off by default: on one CPU thread (`benchmarks/README.md`,
            MiniLM's shapes) a train step's compile is dominated by what lies outside the layers up to
            about 6 layers, where the scan saves nothing, while it runs 4-18% slower and holds
            a stacked copy of the layers' parameters (and of their gradients); it pays from about 12
            layers (a deep decoder such as a 28- or 36-layer Qwen3).
    """

    uses_token_type_ids: ClassVar[bool]
    # The family's checkpoint names: the key prefix of a model with heads ("bert.") and the keys it may
    # hold that the encoder does not use (pooler, heads, buffers).
    checkpoint_prefix: ClassVar[str]
    unused_keys: ClassVar[frozenset[str]]
    # Whether a token attends only to the tokens of its text up to its own position (decoders).
    causal: ClassVar[bool] = False
    # Whether the family builds its spec from config.json through `json_config.JsonConfig` where that is
    # exact (`loading.read_spec`): only families that read no option a config class derives on load.
    reads_config_json: ClassVar[bool] = False
    # Column-parallel projections into heads and MLP units, row-parallel ones out of them; a family without
    # rules has its matrices sharded over "fsdp" along their largest dimension.
    partition_rules: ClassVar[PartitionRules] = ()

    embeddings: nnx.Module
    layers: nnx.List

    def __init__(self, spec: EncoderSpec, *, dtype: Any = jnp.float32):
        dtype = jnp.dtype(dtype)
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype must be float32 or bfloat16, got {dtype}")
        self.spec = spec
        self.dtype = dtype
        self.remat_policy: str | None = None
        self.use_attention()
        self.use_scan_layers()

    def use_attention(self, attention_implementation: str = "auto", attention_dropout: str = "exact") -> None:
        """Sets the static attention options (see the class docstring); jit compiles anew for new ones.

        Raises:
            ValueError: naming an unknown option value and the known ones, or "cudnn" off a GPU.
        """
        choose_kernel(attention_implementation, attention_dropout, jax.default_backend())
        self.attention_implementation = attention_implementation
        self.attention_dropout = attention_dropout

    def use_scan_layers(self, scan_layers: bool = False) -> None:
        """Sets `scan_layers` (see the class docstring); jit compiles anew for a new value.

        Raises:
            ValueError: `scan_layers` is not a bool.
        """
        if not isinstance(scan_layers, bool):
            raise ValueError(f"scan_layers must be True or False, got {scan_layers!r}")
        self.scan_layers = scan_layers

    @classmethod
    def spec_from_config(cls, config: PreTrainedConfig) -> EncoderSpec:
        """The family's EncoderSpec of a transformers config (or, where `reads_config_json`, of a
        `json_config.JsonConfig` standing in for it).

        Raises:
            UnsupportedConfigError: naming a config option the family does not implement.
        """
        raise NotImplementedError(f"{cls.__name__} does not say how to read a transformers config")

    @classmethod
    def key_table(cls, num_layers: int) -> KeyTable:
        """The complete checkpoint key (without prefix) -> parameter path table, for `num_layers` layers."""
        raise NotImplementedError(f"{cls.__name__} does not name its checkpoint keys")

    @classmethod
    def key_mapping(cls, spec: EncoderSpec) -> KeyMapping:
        """How the checkpoint of an encoder with this spec maps onto its parameters (see `jaxst.io.hf`)."""
        return KeyMapping(
            spec.model_type, cls.key_table(spec.num_layers), cls.checkpoint_prefix, cls.unused_keys
        )

    @property
    def hidden_size(self) -> int:
        """Width H of the hidden states."""
        return self.spec.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        """Number L of layers; `output_hidden_states` returns L + 1 arrays."""
        return self.spec.num_layers

    @property
    def config(self) -> PreTrainedConfig:
        """A new transformers config (e.g. `BertConfig`) with the options this encoder was built from."""
        return self.spec.transformers_config()

    def embed(
        self, input_ids: jax.Array, token_type_ids: jax.Array | None, position_ids: jax.Array | None
    ) -> jax.Array:
        """The embedding output, float32 [B, T, H] before dropout (arguments as `__call__`'s)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it embeds tokens")

    def attention_inputs(self, mask: jax.Array, positions: jax.Array) -> AttentionInputs:
        """What every layer's attention gets: the mask bool [B, 1, T, T] (or its `TextMask`, for a fused
        kernel) and, in a family that has them, a bias or rotary angles of the positions int [B, T]."""
        del positions
        return AttentionInputs(mask)

    def last_hidden_state(self, hidden: jax.Array) -> jax.Array:
        """The last layer's output -> the encoder's output [B, T, H] (the identity; a final norm in
        pre-norm families)."""
        return hidden

    def __call__(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        token_type_ids: jax.Array | None = None,
        *,
        position_ids: jax.Array | None = None,
        output_hidden_states: bool = False,
        dropout_rng: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, ...]]:
        """Encode a padded batch, or packed rows (several texts laid end to end in each row).

        Args:
            input_ids: int [B, T] token ids.
            attention_mask: int [B, T], 1 for tokens, 0 for padding (padded keys are never attended).
                Packed rows number their texts 1, 2, ... instead, and a token attends only to the keys
                of its own text.
            token_type_ids: int [B, T] segment ids, or None for all zeros; only for architectures with
                token type embeddings (`uses_token_type_ids`).
            position_ids: None for one text per row, whose tokens are at positions 0..T-1 (left padding
                included, as transformers counts them); for packed rows int [B, T], each token's index
                within its text (0 for padding). A text's outputs then equal those of the text alone,
                up to float rounding (MPNet's relative bias and rotary positions depend only on
                positions within a text). A causal family's token attends to the tokens of its text at
                positions up to its own (`attention.text_attention_mask`).
            output_hidden_states: also return every layer's output.
            dropout_rng: a `jax.random` key for train-mode dropout (the config's dropout sites and
                rates); None for eval mode.

        Returns:
            The last hidden state [B, T, H] in the compute dtype; with `output_hidden_states` the pair
            (last hidden state, hidden states) where hidden states is a tuple of L + 1 arrays [B, T, H]:
            the embedding output first, then each layer's output, the last one through
            `last_hidden_state` (the final norm of a pre-norm family), as transformers returns them.
        """
        self._check_inputs(input_ids, attention_mask, token_type_ids, position_ids)
        batch, length = input_ids.shape
        embedding_bits, layer_bits = self._dropout_bits(dropout_rng, batch, length)
        seed_dropout_keys(self, dropout_rng)
        hidden = self.embed(input_ids, token_type_ids, position_ids)
        hidden = dropout(hidden, self.spec.embedding_dropout, embedding_bits.get("embedding")).astype(
            self.dtype
        )
        hidden = split_batch(hidden)
        positions = (
            jnp.broadcast_to(jnp.arange(length), (batch, length)) if position_ids is None else position_ids
        )
        kernel = choose_kernel(self.attention_implementation, self.attention_dropout, jax.default_backend())
        mask = (
            text_attention_mask(attention_mask, positions, causal=self.causal)
            if kernel is None
            else TextMask(attention_mask, positions, self.causal, kernel)
        )
        inputs = self.attention_inputs(mask, positions)
        outputs = run_layers(
            list(self.layers),
            hidden,
            layer_bits,
            self._layer_call(inputs),
            scan=self.scan_layers,
            keep_outputs=output_hidden_states,
        )
        last = self.last_hidden_state(outputs[-1])
        return (last, (hidden, *outputs[:-1], last)) if output_hidden_states else last

    def _layer_call(self, inputs: AttentionInputs) -> Callable[[nnx.Module, jax.Array, Any], jax.Array]:
        """`(layer, hidden, bits) -> layer(hidden, inputs, bits)`, under `nnx.remat` with the
        `remat_policy` when there is one; the output split along the batch over a training mesh's batch
        axes where one is set (`split_batch`)."""

        def run(layer: nnx.Module, hidden: jax.Array, inputs: AttentionInputs, bits: Any) -> jax.Array:
            return layer(hidden, inputs, bits)

        if self.remat_policy is not None:
            run = nnx.remat(run, policy=REMAT_POLICIES[self.remat_policy])
        return lambda layer, hidden, bits: split_batch(run(layer, hidden, inputs, bits))

    def _dropout_bits(
        self, dropout_rng: jax.Array | None, batch: int, length: int
    ) -> tuple[dict[str, jax.Array], list[dict[str, jax.Array] | None]]:
        """(the embedding's dropout bits, each layer's): empty and None in eval mode."""
        if dropout_rng is None:
            return {}, [None] * len(self.layers)
        embedding_shapes = (
            {"embedding": (batch, length, self.hidden_size)} if self.spec.embedding_dropout else {}
        )
        layer_shapes = [layer.dropout_shapes(batch, length) for layer in self.layers]
        embedding_bits, *layer_bits = draw_dropout_bits(dropout_rng, [embedding_shapes, *layer_shapes])
        return embedding_bits, layer_bits

    def _check_inputs(
        self,
        input_ids: jax.Array,
        attention_mask: jax.Array,
        token_type_ids: jax.Array | None,
        position_ids: jax.Array | None,
    ) -> None:
        """Shape and dtype checks at trace time, so bad input fails with a message, not an XLA error."""
        named = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:
            named["position_ids"] = position_ids
        if token_type_ids is not None:
            if not self.uses_token_type_ids:
                raise ValueError(
                    f"{self.spec.model_type} has no token type embeddings: pass token_type_ids=None"
                )
            named["token_type_ids"] = token_type_ids
        for name, array in named.items():
            if jnp.ndim(array) != 2 or not jnp.issubdtype(jnp.result_type(array), jnp.integer):
                raise ValueError(
                    f"{name} must be an integer array [batch, length], got {jnp.result_type(array)} "
                    f"of shape {jnp.shape(array)}"
                )
            if jnp.shape(array) != jnp.shape(input_ids):
                raise ValueError(f"{name} has shape {jnp.shape(array)}, input_ids {jnp.shape(input_ids)}")
        if input_ids.shape[1] > self.embeddings.max_length:
            raise ValueError(
                f"sequence length {input_ids.shape[1]} exceeds the {self.embeddings.max_length} positions "
                f"of this {self.spec.model_type} model"
            )


def remat_graphdef(graphdef: nnx.GraphDef, params: Any, policy: str | None) -> nnx.GraphDef:
    """The graphdef of the same encoder with `remat_policy` set to `policy` (None: no remat).

    Raises:
        ValueError: naming an unknown policy and the known ones.
    """
    if policy is not None and policy not in REMAT_POLICIES:
        raise ValueError(f"Unknown remat policy {policy!r}; known: {', '.join(REMAT_POLICIES)}.")
    encoder = nnx.merge(graphdef, params)
    encoder.remat_policy = policy
    return nnx.split(encoder)[0]
