"""The encoder's layers under `jax.lax.scan`: one layer body compiled once, however deep the encoder.

A plain Python loop over the layers makes XLA trace, optimise and compile every layer separately, so
compile time grows with depth. Under a scan the body is traced once and the layers' parameters are its
scanned input: `run_layers` stacks each parameter over the layers inside the forward pass (`jnp.stack`,
differentiable, so each layer's gradient flows back to its own parameters), while the parameter pytree
and the checkpoint keys stay per layer (`['layers'][i]...`).

Layers stack only when they are alike: the same NNX graphdef (module types and static attributes, such
as a layer being local or global, or wrapped in a LoRA adapter) and the same parameter shapes and dtypes.
Families whose layers follow a repeating pattern scan a block of one period: Gemma 3's five local layers
and one global layer scan as one block of six, ModernBERT's first layer (without attention norm) runs
alone and the others scan as blocks of (local, local, global). `plan_runs` finds the blocks; a layer
that starts no repetition runs on its own, as in the loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# A layer's call under the encoder's remat policy: (layer, hidden, bits) -> hidden; see `run_layers`.
LayerCall = Callable[[nnx.Module, jax.Array, Any], jax.Array]


@dataclasses.dataclass(frozen=True)
class LayerRun:
    """Layers start + k * period + j (k < count, j < period): `count` repetitions of a block of `period`
    consecutive layers; block position j of every repetition has the same structure."""

    start: int
    period: int
    count: int

    @property
    def stop(self) -> int:
        """One past the last layer of the run."""
        return self.start + self.period * self.count


def plan_runs(kinds: Sequence[Hashable]) -> list[LayerRun]:
    """Cover the layers 0..L-1, of structure `kinds[i]`, with consecutive runs, from the first layer on.

    At each layer the run whose block repeats (count >= 2) and saves the most layer bodies
    ((count - 1) * period; ties: the shorter period) is taken; a layer that starts no repetition is a run
    of count 1. E.g. kinds a b b a b b a b b -> [LayerRun(0, 3, 3)]; a b b b -> [(0, 1, 1), (1, 1, 3)].
    """
    runs, start, total = [], 0, len(kinds)
    while start < total:
        best = LayerRun(start, 1, 1)
        for period in range(1, (total - start) // 2 + 1):
            block = kinds[start : start + period]
            count = 1
            while kinds[start + count * period : start + (count + 1) * period] == block:
                count += 1
            if count >= 2 and (count - 1) * period > (best.count - 1) * best.period:
                best = LayerRun(start, period, count)
        runs.append(best)
        start = best.stop
    return runs


def layer_kind(graphdef: nnx.GraphDef, state: nnx.State) -> Hashable:
    """What two layers must share to stack: the graphdef and each state leaf's shape and dtype."""
    return graphdef, tuple((leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(state))


def run_layers(
    layers: Sequence[nnx.Module],
    hidden: jax.Array,
    layer_bits: Sequence[Any],
    call: LayerCall,
    *,
    scan: bool,
    keep_outputs: bool,
) -> list[jax.Array]:
    """Run `layers` in order on `hidden`: with `scan` each repeated block under one `lax.scan`, else
    one after the other (a Python loop, each layer traced and compiled on its own).

    Args:
        layers: the L layers (NNX modules).
        hidden: the first layer's input [B, T, H].
        layer_bits: per layer, its dropout bits (a dict of uint32 arrays) or None (eval mode).
        call: `(layer, hidden, bits) -> hidden` [B, T, H], the layer's call (the attention inputs bound,
            under `jax.checkpoint` when the encoder remats); it sees a layer merged from one graphdef
            and that layer's slice of the stacked state.
        scan: whether repeated blocks run under `lax.scan` (see `plan_runs`).
        keep_outputs: return every layer's output; else only the last layer's (the scan then stacks none).

    Returns:
        The L layer outputs [B, T, H] in layer order, or with keep_outputs False the last one alone.
    """
    if scan:
        splits = [nnx.split(layer) for layer in layers]
        runs = plan_runs([layer_kind(*split) for split in splits])
    else:
        runs = [LayerRun(index, 1, 1) for index in range(len(layers))]
    outputs = []
    for run in runs:
        if run.count == 1:
            hidden = call(layers[run.start], hidden, layer_bits[run.start])
            outputs.append(hidden)
            continue
        graphdefs = [graphdef for graphdef, _ in splits[run.start : run.start + run.period]]
        members = [range(run.start + j, run.stop, run.period) for j in range(run.period)]
        states = [_stack([splits[i][1] for i in indices]) for indices in members]
        bits = [_stack([layer_bits[i] for i in indices]) for indices in members]

        def body(carry: jax.Array, scanned: tuple[list[Any], list[Any]], graphdefs=graphdefs) -> tuple:
            block_states, block_bits = scanned
            block_outputs = []
            for graphdef, state, site_bits in zip(graphdefs, block_states, block_bits, strict=True):
                carry = call(nnx.merge(graphdef, state), carry, site_bits)
                block_outputs.append(carry)
            return carry, (block_outputs if keep_outputs else None)

        hidden, stacked = jax.lax.scan(body, hidden, (states, bits))
        if keep_outputs:  # stacked[j][k] is the output of layer start + k * period + j
            outputs.extend(stacked[j][k] for k in range(run.count) for j in range(run.period))
    return outputs if keep_outputs else [hidden]


def _stack(trees: Sequence[Any]) -> Any:
    """The trees' leaves stacked along a new leading axis (None: eval mode's missing bits stay None)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)
