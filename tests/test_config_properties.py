"""Property-based: every config override is either accepted, and then
initializes, steps and trains, or rejected with a ValueError that names the
field at fault."""

import math
import os

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import jax
import ml_collections
import numpy as np
import pytest

from ganjax import build
from ganjax import configs
from ganjax import input_pipeline
from ganjax import losses
from ganjax import models
from ganjax import optimizers
from ganjax import regularizers
from ganjax import trainer
from tests.conftest import smoke_config

NUM_DEVICES = 4  # conftest's fake CPU devices

_ANY_JUNK = st.sampled_from([None, "1", [], True, float("nan")])
_FLOATS = st.one_of(
    st.floats(-2.0, 2.0), st.sampled_from([0.0, float("inf"), -1e-9]),
    _ANY_JUNK)
_INTS = st.one_of(st.integers(-3, 40), _ANY_JUNK)

# field -> values to try, valid and invalid mixed.
FIELDS = {
    "batch_size": _INTS,
    "latent_dim": _INTS,
    "steps_per_call": st.one_of(st.integers(-1, 4), _ANY_JUNK),
    "log_every": _INTS,
    "checkpoint_every": _INTS,
    "keep_checkpoints": _INTS,
    "num_sample_images": _INTS,
    "seed": st.one_of(st.integers(-2, 2**33), _ANY_JUNK),
    "g_learning_rate": _FLOATS,
    "d_learning_rate": _FLOATS,
    "rmsprop_eps": _FLOATS,
    "rmsprop_decay": _FLOATS,
    "adam_b1": _FLOATS,
    "d_dropout": _FLOATS,
    "scan_unroll": _INTS,
    "eval_every": _INTS,
    "eval_num_samples": st.one_of(st.integers(-1, 300), _ANY_JUNK),
    "nan_rollbacks": _INTS,
    "optimizer": st.sampled_from(["rmsprop", "adam", "sgd", "", None]),
    "bce": st.sampled_from(["logits", "keras", "hinge", None]),
    "phase1_bn": st.sampled_from(["batch", "inference", "train"]),
    "compute_dtype": st.sampled_from(["float32", "bfloat16", "float16"]),
    "conv_impl": st.sampled_from(["auto", "xla", "matmul", "hybrid", "fft"]),
    "dataset": st.sampled_from([*sorted(input_pipeline.SPECS), "imagenet",
                                3]),
    "parallelism": st.sampled_from(["pmap", "shard_map", "sharding",
                                    "gspmd"]),
    "loss": st.sampled_from(["reference", "hinge", "relativistic", "wgan",
                             None]),
    "architecture": st.sampled_from([*sorted(models.ARCHITECTURES),
                                     "biggan"]),
    "augment_translation": _FLOATS,
    "augment_cutout": _FLOATS,
    "augment_fill": _FLOATS,
    "augment": st.sampled_from(["", "translation", "color,cutout", "flip",
                                "color,,", 3]),
    "gp_weight": _FLOATS,
    "r1_weight": _FLOATS,
    "r1_every": _INTS,
    "penalties": st.sampled_from(["", "r1:1", "gp:0.5,r1:1:4", "r1:1:3",
                                  "drift:1", "r1", "r1:x", "r1:-1",
                                  "r1:1:0", 3, None]),
    "ema_decay": _FLOATS,
    "ema_start": _INTS,
    "conditional": st.sampled_from([True, False, 1, 0, "yes", None]),
    "spectral_norm": st.sampled_from([True, False, 1, None]),
    "g_width": _INTS,
    "d_width": _INTS,
    "num_seeds": _INTS,
    "seed_batching": st.sampled_from(["auto", "vmap", "unrolled", "pmap"]),
    "lr_schedule": st.sampled_from(["constant", "linear", "cosine", "step"]),
    "lr_warmup_steps": _INTS,
    "lr_decay_steps": _INTS,
    "ada_target": _FLOATS,
    "ada_kimg": _FLOATS,
    "sweep": st.sampled_from(["", "adam_b1=0,0.5", "d_learning_rate=1e-3,-1",
                              "loss=hinge", "ema_decay=0,0.9", "adam_b1",
                              "g_learning_rate+d_learning_rate=1e-3,2e-3",
                              "r1_weight=0.1,1", 3, None]),
}

overrides_strategy = st.dictionaries(
    st.sampled_from(sorted(FIELDS)), st.none(), min_size=1,
    max_size=3).flatmap(lambda keys: st.fixed_dictionaries(
        {k: FIELDS[k] for k in keys}))


def _make(overrides):
  """The smoke config with `overrides`, of any type (ConfigDict's own type
  check would refuse a str for an int before ganjax sees it)."""
  return ml_collections.ConfigDict({**smoke_config().to_dict(), **overrides})


def _classify(overrides):
  """None if accepted, else the field named by the ValueError."""
  try:
    configs.validate(_make(overrides), NUM_DEVICES)
  except ValueError as e:
    message = str(e)
    assert message.startswith("config."), message
    return message[len("config."):].split("=")[0]
  return None


# Fields whose validity depends on others (the documented interactions):
# a rejection may name such a field when only its partner was overridden.
TIED = {
    "architecture": {"dataset"},  # must make the dataset's image size
    "eval_every": {"dataset", "steps_per_call"},  # needs a classifier
    "r1_every": {"r1_weight", "steps_per_call", "penalties"},
    "penalties": {"r1_every", "r1_weight", "gp_weight", "steps_per_call"},
    "num_seeds": {"seed"},
    "lr_schedule": {"lr_warmup_steps", "lr_decay_steps"},
    "lr_decay_steps": {"lr_schedule", "lr_warmup_steps"},
    "num_steps": {"steps_per_call", "lr_schedule", "lr_decay_steps",
                  "lr_warmup_steps"},
    "log_every": {"steps_per_call"},
    "sample_every": {"steps_per_call"},
    "checkpoint_every": {"steps_per_call"},
    "ada_target": {"augment"},  # needs transforms
    "sweep": set(FIELDS),  # each point is validated with the other fields
}


@settings(max_examples=400, deadline=None, derandomize=True)
@given(overrides_strategy)
# Each documented interaction at least once (random draws rarely meet some).
@example({"seed": 2**32 - 1, "num_seeds": 2})
@example({"dataset": "cifar10"})
@example({"r1_weight": 1.0, "r1_every": 3})
@example({"penalties": "r1:1:3"})
@example({"lr_schedule": "linear"})
@example({"lr_decay_steps": 4})
@example({"lr_schedule": "cosine", "lr_decay_steps": 4})
@example({"steps_per_call": 3})
def test_a_rejection_names_a_field_at_fault(overrides):
  """The smoke config is valid, so a rejection is caused by the overrides:
  the error names an overridden field, or a field tied to one by a
  documented interaction; and the named field is at fault: with it back at
  its default (where it was overridden), that error goes away..."""
  field = _classify(overrides)
  if field is None:
    return
  assert field in overrides or TIED.get(field, set()) & set(overrides), (
      field, overrides)
  default = smoke_config()[field]
  if field in overrides and not _same(overrides[field], default):
    rest = {k: v for k, v in overrides.items() if k != field}
    # ... unless a partner it is tied to is overridden too.
    assert (_classify(rest) != field
            or TIED.get(field, set()) & set(rest)), (field, overrides)


def _same(a, b):
  return type(a) is type(b) and a == b  # pylint: disable=unidiomatic-typecheck


def _abstract_step(config):
  """Traces initialization and one fused call of `config` without running
  them (jax.eval_shape): what an accepted config must get through."""
  spec = input_pipeline.get_spec(config.dataset)
  num_examples = 64
  state = jax.eval_shape(lambda: build.initial_state(
      config, build.make_keys(config.seed), num_examples))
  stored = input_pipeline._stored_shape(spec)  # pylint: disable=protected-access
  examples = (num_examples,)
  if config.parallelism != "sharding":  # one copy per device, stacked
    examples = (NUM_DEVICES, num_examples)
  data = {"images": jax.ShapeDtypeStruct((*examples, *stored), np.uint8)}
  if config.conditional:
    data["labels"] = jax.ShapeDtypeStruct(examples, np.uint8)
  train_fn = build.compile_train_fn(
      config, jax.local_devices()[:NUM_DEVICES], seeds=True)
  states, metrics = jax.eval_shape(train_fn, (state,) * config.num_seeds,
                                   data)
  assert len(states) == config.num_seeds
  assert all(m["d_loss"].shape == () for m in metrics)


# Values meant to be valid, combined freely (names from the registries):
# whatever validate accepts of them must initialize and step.
_PLAUSIBLE = st.fixed_dictionaries({}, optional={
    "dataset": st.sampled_from(sorted(input_pipeline.SPECS)),
    "architecture": st.sampled_from(sorted(models.ARCHITECTURES)),
    "loss": st.sampled_from(losses.NAMES),
    "optimizer": st.sampled_from(sorted(optimizers.OPTIMIZERS)),
    "augment": st.sampled_from(["", "translation", "color,cutout",
                                "color,translation,cutout"]),
    "augment_fill": st.sampled_from([0.0, -1.0]),
    "gp_weight": st.sampled_from([0.0, 10.0]),
    "r1_weight": st.sampled_from([0.0, 0.1]),
    "penalties": st.sampled_from(
        ["", *(f"{name}:0.1" for name in sorted(regularizers.PENALTIES))]),
    "ema_decay": st.sampled_from([0.0, 0.99]),
    "conditional": st.booleans(),
    "spectral_norm": st.booleans(),
    "phase1_bn": st.sampled_from(["batch", "inference"]),
    "num_seeds": st.sampled_from([1, 2]),
    "parallelism": st.sampled_from(["pmap", "shard_map", "sharding"]),
    "latent_dim": st.sampled_from([1, 8]),
    "g_width": st.sampled_from([2, 8]),
    "d_width": st.sampled_from([2, 8]),
    "eval_every": st.just(0),
})


@settings(max_examples=15, deadline=None, derandomize=True)
@given(_PLAUSIBLE)
def test_accepted_configs_initialize_and_step(overrides):
  if _classify(overrides) is None:
    _abstract_step(_trainable(overrides))


def _trainable(overrides):
  """Accepted overrides, made cheap to train (one fused call)."""
  config = _make(overrides)
  with config.unlocked():
    config.num_steps = config.steps_per_call
    for field in ("log_every", "sample_every", "checkpoint_every"):
      config[field] = config.steps_per_call
    config.eval_every = 0
  return config


# Accepted configs train; the values are kept to what trains in a few seconds
# (each distinct shape compiles once).
_ACCEPTED = st.fixed_dictionaries({}, optional={
    "batch_size": st.sampled_from([4, 8, 16]),
    "latent_dim": st.sampled_from([1, 8, 32]),
    "g_learning_rate": st.floats(1e-6, 1e-2),
    "d_dropout": st.floats(0.0, 0.99),
    "optimizer": st.sampled_from(["rmsprop", "adam"]),
    "bce": st.sampled_from(["logits", "keras"]),
    "phase1_bn": st.sampled_from(["batch", "inference"]),
    "steps_per_call": st.sampled_from([1, 2]),
    "seed": st.integers(0, 2**32 - 1),
})


@settings(max_examples=6, deadline=None, derandomize=True)
@given(_ACCEPTED)
def test_accepted_configs_train(tmp_path_factory, overrides):
  assert _classify(overrides) is None
  config = _trainable(overrides)
  workdir = str(tmp_path_factory.mktemp("prop"))
  state = trainer.train_and_evaluate(config, workdir)
  assert int(state.step) == config.steps_per_call
  assert os.path.isdir(os.path.join(workdir, "checkpoints",
                                    str(config.steps_per_call)))
  for x in (state.g_params, state.d_params):
    for leaf in np.asarray(x["Dense_0"]["kernel"]).ravel()[:10]:
      assert math.isfinite(leaf)


@pytest.mark.parametrize("value", [float("nan"), "1e-3", -1.0, 0.0])
def test_learning_rate_errors_name_the_field(value):
  assert _classify({"d_learning_rate": value}) == "d_learning_rate"
