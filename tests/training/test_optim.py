"""Schedules, weight-decay mask, clipping and AdamW against sentence-transformers' fit in torch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import transformers
from flax import nnx
from sentence_transformers.sentence_transformer.fit_mixin import FitMixin

from jaxst.training.optim import (
    SCHEDULERS,
    clip_by_global_norm_like_torch,
    make_optimizer,
    make_schedule,
    weight_decay_mask,
)

ST_NO_DECAY = ["bias", "LayerNorm.bias", "LayerNorm.weight"]  # sentence-transformers' fit


def st_decays(name: str) -> bool:
    return not any(part in name for part in ST_NO_DECAY)


def torch_learning_rates(
    name: str, lr: float, warmup_steps: int, total_steps: int, num_steps: int
) -> np.ndarray:
    """The lr of each optimizer step under sentence-transformers' own scheduler choice."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = FitMixin._get_scheduler(optimizer, name, warmup_steps, total_steps)
    rates = []
    for _ in range(num_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.asarray(rates)


@pytest.mark.parametrize(
    "name", ["ConstantLR", "WarmupConstant", "WarmupLinear", "WarmupCosine", "WARMUPCOSINEWITHHARDRESTARTS"]
)
@pytest.mark.parametrize(
    ("warmup_steps", "total_steps"), [(0, 10), (3, 10), (10, 10), (4, 37), (7, 5), (1, 1)]
)
def test_schedules_equal_transformers_at_every_step(name, warmup_steps, total_steps):
    lr = 2e-5
    num_steps = total_steps + 8  # past the end too, where cosine rises again and hard restarts stays 0
    expected = torch_learning_rates(name, lr, warmup_steps, total_steps, num_steps)
    schedule = make_schedule(name, lr=lr, warmup_steps=warmup_steps, total_steps=total_steps)
    ours = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(num_steps)))
    assert ours.dtype == np.float32
    # float32 against torch's float64: equal to float32 rounding, relative to each value and to the peak
    # (cos(pi * k) past the end is exactly -1 in float64, 1e-14 of the peak away from it in float32).
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7 * lr)
    np.testing.assert_allclose(float(schedule(3)), expected[3], rtol=1e-6, atol=1e-7 * lr)  # a scalar count


def test_unknown_scheduler_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="Unknown scheduler 'warmupexp'; known schedulers: " + ", ".join(SCHEDULERS)
    ):
        make_schedule("warmupexp", lr=1e-3, warmup_steps=1, total_steps=10)
    with pytest.raises(ValueError, match="Unknown scheduler"):
        make_optimizer({}, lr=1e-3, scheduler="linear", warmup_steps=0, total_steps=1)


@pytest.mark.parametrize("lr", [0, -2e-5, float("nan"), float("inf"), "2e-5", None, False, [2e-5]])
def test_a_learning_rate_that_is_not_a_positive_finite_number_is_named(lr):
    with pytest.raises(ValueError, match="lr must be a positive finite number, got "):
        make_schedule("warmuplinear", lr=lr, warmup_steps=1, total_steps=10)
    with pytest.raises(ValueError, match="lr must be a positive finite number, got "):
        make_optimizer({}, lr=lr, scheduler="constantlr", warmup_steps=0, total_steps=1)


def nested(flat: dict[str, np.ndarray]) -> dict:
    """{"a.b.weight": array} -> {"a": {"b": {"weight": array}}}."""
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = jnp.asarray(value)
    return tree


def flatten(tree: dict) -> dict[str, np.ndarray]:
    """The inverse of `nested`."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(str(key.key) for key in path): np.asarray(value) for path, value in leaves}


def decayed_names(mask: dict) -> set[str]:
    return {name for name, decays in flatten(mask).items() if decays}


TINY = {
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "vocab_size": 50,
}


@pytest.mark.parametrize(
    "config",
    [
        transformers.BertConfig(**TINY),
        transformers.RobertaConfig(**TINY),
        transformers.XLMRobertaConfig(**TINY),
        transformers.MPNetConfig(**TINY),
    ],
    ids=lambda config: config.model_type,
)
def test_decay_mask_equals_sentence_transformers_name_rule(config):
    model = transformers.AutoModel.from_config(config)
    params = {name: np.zeros(p.shape, np.float32) for name, p in model.named_parameters()}
    expected = {name for name in params if st_decays(name)}
    assert decayed_names(weight_decay_mask(nested(params))) == expected


def test_decay_mask_differs_from_sentence_transformers_only_on_distilbert_layer_norm_weights():
    config = transformers.DistilBertConfig(vocab_size=50, dim=8, n_layers=2, n_heads=2, hidden_dim=16)
    model = transformers.AutoModel.from_config(config)
    params = {name: np.zeros(p.shape, np.float32) for name, p in model.named_parameters()}
    expected = {name for name in params if st_decays(name)}
    difference = expected - decayed_names(weight_decay_mask(nested(params)))
    assert difference == {
        f"transformer.layer.{i}.{norm}.weight"
        for i in range(2)
        for norm in ("sa_layer_norm", "output_layer_norm")
    }


class TinyEncoder(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.embeddings = nnx.Embed(10, 4, rngs=rngs)
        self.LayerNorm = nnx.LayerNorm(4, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(4, 4, rngs=rngs) for _ in range(2)])


def test_weight_decay_reaches_only_kernels_and_embeddings_of_an_nnx_state():
    _, params = nnx.split(TinyEncoder(nnx.Rngs(0)), nnx.Param)
    params = jax.tree.map(lambda x: x + 1.0, params)  # non-zero biases and scales
    tx = make_optimizer(
        params, lr=0.1, weight_decay=0.5, scheduler="constantlr", warmup_steps=0, total_steps=1
    )
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(tx.update)(zero_grads, tx.init(params), params)  # Adam part is 0: only the decay
    flat_updates = dict(jax.tree_util.tree_flatten_with_path(updates)[0])
    for path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = ".".join(str(getattr(key, "key", getattr(key, "idx", ""))) for key in path[:-1])
        expected = -0.1 * 0.5 * value if name.endswith(("kernel", "embedding")) else jnp.zeros_like(value)
        np.testing.assert_allclose(flat_updates[path], expected, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("norm", [0.5, 1.0 - 5e-7, 1.0, 3.0])
def test_clipping_equals_torch_clip_grad_norm(norm):
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5).astype(np.float32)}
    total = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads.values()))
    grads = {k: (g * (norm / total)).astype(np.float32) for k, g in grads.items()}
    tensors = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads.values()]
    for tensor, g in zip(tensors, grads.values(), strict=True):
        tensor.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_norm_(tensors, 1.0)
    clipped, _ = clip_by_global_norm_like_torch(1.0).update(grads, optax.EmptyState())
    for tensor, key in zip(tensors, grads, strict=True):
        np.testing.assert_allclose(clipped[key], tensor.grad.numpy(), rtol=3e-7, atol=0)


# Parameters as a jaxst encoder names them, and the sentence-transformers (torch) name of each.
SHAPES = {
    "embeddings.word_embeddings.embedding": ("embeddings.word_embeddings.weight", (6, 4)),
    "embeddings.LayerNorm.scale": ("embeddings.LayerNorm.weight", (4,)),
    "embeddings.LayerNorm.bias": ("embeddings.LayerNorm.bias", (4,)),
    "dense.kernel": ("dense.weight", (4, 3)),
    "dense.bias": ("dense.bias", (3,)),
}
GRAD_SCALES = [0.3, 5.0, 0.9, 2.0, 0.05, 8.0, 1.0, 0.7, 3.0]  # global norms on both sides of the clip


def random_values(rng: np.random.Generator, scale: float = 1.0) -> dict[str, np.ndarray]:
    values = {name: rng.normal(size=shape).astype(np.float32) for name, (_, shape) in SHAPES.items()}
    total = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in values.values()))
    return {name: (v * (scale / total)).astype(np.float32) for name, v in values.items()}


def torch_fit_steps(
    params, grads_per_step, *, lr, weight_decay, max_grad_norm, warmup, total, optimizer_params
):
    """sentence-transformers' fit update: grouped AdamW, clip_grad_norm_, LambdaLR; params after each step."""
    tensors = {SHAPES[name][0]: torch.nn.Parameter(torch.from_numpy(v.copy())) for name, v in params.items()}
    groups = [
        {"params": [p for n, p in tensors.items() if st_decays(n)], "weight_decay": weight_decay},
        {"params": [p for n, p in tensors.items() if not st_decays(n)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, **optimizer_params)
    scheduler = FitMixin._get_scheduler(optimizer, "WarmupLinear", warmup, total)
    history = []
    for grads in grads_per_step:
        for name, g in grads.items():
            tensors[SHAPES[name][0]].grad = torch.from_numpy(g.copy())
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_grad_norm)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        history.append({name: tensors[SHAPES[name][0]].detach().numpy().copy() for name in params})
    return history


@pytest.mark.parametrize(
    "options",
    [
        {"weight_decay": 0.01, "max_grad_norm": 1.0, "optimizer_params": {}},
        {"weight_decay": 0.1, "max_grad_norm": 0.5, "optimizer_params": {"betas": (0.8, 0.99), "eps": 1e-6}},
        {"weight_decay": 0.01, "max_grad_norm": None, "optimizer_params": {}},
    ],
)
def test_adamw_with_clipping_and_warmup_linear_equals_torch(options):
    rng = np.random.default_rng(42)
    params = random_values(rng)
    grads_per_step = [random_values(rng, scale) for scale in GRAD_SCALES]
    settings = {"lr": 1e-2, "warmup": 2, "total": len(GRAD_SCALES) - 2, **options}  # ends past total: lr 0
    expected = torch_fit_steps(params, grads_per_step, **settings)

    tx = make_optimizer(
        nested(params),
        lr=settings["lr"],
        weight_decay=options["weight_decay"],
        max_grad_norm=options["max_grad_norm"],
        scheduler="WarmupLinear",
        warmup_steps=settings["warmup"],
        total_steps=settings["total"],
        optimizer_params=options["optimizer_params"],
    )

    @jax.jit
    def step(state, grads):
        params, opt_state = state
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = (nested(params), tx.init(nested(params)))
    for grads, torch_params in zip(grads_per_step, expected, strict=True):
        state = step(state, nested(grads))
        ours = flatten(state[0])
        assert ours.keys() == torch_params.keys()
        for name, value in ours.items():
            np.testing.assert_allclose(value, torch_params[name], rtol=0, atol=1e-6, err_msg=name)
    moved = np.abs(expected[-1]["dense.kernel"] - params["dense.kernel"]).max()
    assert moved > 1e-2  # the steps did move the parameters well beyond the tolerance


def test_optimizer_params_take_only_adamw_options():
    with pytest.raises(ValueError, match=r"Unsupported optimizer_params \['lr'\]"):
        make_optimizer(
            {}, lr=1e-3, scheduler="constantlr", warmup_steps=0, total_steps=1, optimizer_params={"lr": 1}
        )
    with pytest.raises(ValueError, match=r"\['amsgrad'\].*\['betas', 'eps'\]"):
        make_optimizer(
            {},
            lr=1e-3,
            scheduler="constantlr",
            warmup_steps=0,
            total_steps=1,
            optimizer_params={"amsgrad": True},
        )


def test_runs_differing_in_lr_warmup_and_length_share_one_update_program():
    """The schedule's numbers are optimizer state, not constants of the compiled update: a second run with
    another lr, warm-up or length lowers to the same program (so the compilation cache serves it), and each
    still applies its own rate: its updates equal optax.adamw's with that run's schedule."""
    _, params = nnx.split(TinyEncoder(nnx.Rngs(0)), nnx.Param)
    grads = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size, dtype=jnp.float32)).reshape(x.shape), params)

    def third_update(tx: optax.GradientTransformation):
        """The lowered third update (past the shorter warm-up, inside the longer one) and its updates."""

        def update(grads, opt_state, params):
            return tx.update(grads, opt_state, params)

        state = tx.init(params)
        for _ in range(2):
            _, state = jax.jit(update)(grads, state, params)
        lowered = jax.jit(update).lower(grads, state, params)
        return lowered.as_text(), lowered.compile()(grads, state, params)[0]

    programs = []
    for lr, warmup_steps, total_steps in ((1e-3, 1, 10), (5e-4, 4, 40)):
        numbers = dict(lr=lr, warmup_steps=warmup_steps, total_steps=total_steps)
        tx = make_optimizer(params, weight_decay=0.0, max_grad_norm=None, scheduler="WarmupLinear", **numbers)
        program, updates = third_update(tx)
        programs.append(program)
        _, expected = third_update(optax.adamw(make_schedule("WarmupLinear", **numbers), weight_decay=0.0))
        for ours, reference in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=0)
    assert programs[0] == programs[1]
