"""Property-based: every config override is either accepted, and then trains,
or rejected with a ValueError that names the field."""

import math
import os

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import numpy as np
import pytest

from ganjax import configs
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
    "dataset": st.sampled_from(["fashion_mnist", "cifar10", 3]),
    "parallelism": st.sampled_from(["pmap", "shard_map", "gspmd"]),
    "loss": st.sampled_from(["reference", "hinge", "relativistic", "wgan",
                             None]),
    "architecture": st.sampled_from(["dcgan28", "dcgan32", "resnet32",
                                     "biggan"]),
    "augment": st.sampled_from(["", "translation", "color,cutout", "flip",
                                "color,,", 3]),
    "gp_weight": _FLOATS,
    "r1_weight": _FLOATS,
    "r1_every": _INTS,
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


def _int(v, low):
  return type(v) is int and v >= low  # pylint: disable=unidiomatic-typecheck


def _number(v):
  return type(v) in (int, float) and math.isfinite(v)  # pylint: disable=unidiomatic-typecheck


# The documented meaning of each field (experiments/fashion.py), written
# independently of configs.validate: what a correct validator accepts.
VALID = {
    "batch_size": lambda v: _int(v, 1) and v % NUM_DEVICES == 0,
    "latent_dim": lambda v: _int(v, 1),
    "steps_per_call": lambda v: _int(v, 1),
    "log_every": lambda v: _int(v, 1),
    "checkpoint_every": lambda v: _int(v, 1),
    "keep_checkpoints": lambda v: _int(v, 1),
    "num_sample_images": lambda v: _int(v, 1),
    "seed": lambda v: _int(v, 0) and v < 2**32,
    "g_learning_rate": lambda v: _number(v) and v > 0,
    "d_learning_rate": lambda v: _number(v) and v > 0,
    "rmsprop_eps": lambda v: _number(v) and v > 0,
    "rmsprop_decay": lambda v: _number(v) and 0 <= v < 1,
    "adam_b1": lambda v: _number(v) and 0 <= v < 1,
    "d_dropout": lambda v: _number(v) and 0 <= v < 1,
    "scan_unroll": lambda v: _int(v, 0),
    "eval_every": lambda v: _int(v, 0),
    "eval_num_samples": lambda v: _int(v, 100),
    "nan_rollbacks": lambda v: _int(v, 0),
    "optimizer": lambda v: v in ("rmsprop", "adam"),
    "bce": lambda v: v in ("logits", "keras"),
    "phase1_bn": lambda v: v in ("batch", "inference"),
    "compute_dtype": lambda v: v in ("float32", "bfloat16"),
    "conv_impl": lambda v: v in ("auto", "xla", "matmul", "hybrid"),
    "dataset": lambda v: v in ("fashion_mnist", "cifar10"),
    "parallelism": lambda v: v in ("pmap", "shard_map"),
    "loss": lambda v: v in ("reference", "minimax", "non_saturating", "hinge",
                            "wasserstein", "least_squares", "relativistic"),
    "architecture": lambda v: v in ("dcgan28", "dcgan32", "resnet32"),
    "augment": lambda v: isinstance(v, str) and all(
        p in ("color", "translation", "cutout") for p in v.split(",") if p),
    "gp_weight": lambda v: _number(v) and v >= 0,
    "r1_weight": lambda v: _number(v) and v >= 0,
    "r1_every": lambda v: _int(v, 1),
    "ema_decay": lambda v: _number(v) and 0 <= v < 1,
    "ema_start": lambda v: _int(v, 0),
    "conditional": lambda v: v is True or v is False,
    "spectral_norm": lambda v: v is True or v is False,
    "g_width": lambda v: _int(v, 1),
    "d_width": lambda v: _int(v, 1),
    "num_seeds": lambda v: _int(v, 1),
    "seed_batching": lambda v: v in ("auto", "vmap", "unrolled"),
    "lr_schedule": lambda v: v in ("constant", "linear", "cosine"),
    "lr_warmup_steps": lambda v: _int(v, 0),
    "lr_decay_steps": lambda v: _int(v, 0),
}
_SIZES = {"fashion_mnist": 28, "cifar10": 32, "dcgan28": 28, "dcgan32": 32,
          "resnet32": 32}
_MULTIPLES = ("num_steps", "log_every", "sample_every", "checkpoint_every",
              "eval_every")  # of steps_per_call


def _invalid_fields(overrides):
  config = _make(overrides).to_dict()
  bad = {f for f, v in overrides.items() if not VALID[f](v)}
  every = config["steps_per_call"]
  if "steps_per_call" not in bad:
    bad |= {f for f in _MULTIPLES
            if f not in bad and config[f] % every}
  # Fields valid alone but not together.
  if not bad & {"dataset", "architecture"} and (
      _SIZES[config["dataset"]] != _SIZES[config["architecture"]]):
    bad.add("architecture")  # it does not make the dataset's image size
  if config["dataset"] == "cifar10" and not bad & {"dataset", "eval_every"} \
      and config["eval_every"]:
    bad.add("eval_every")  # no evaluation classifier for CIFAR-10
  if not bad & {"r1_weight", "r1_every", "steps_per_call"} and (
      config["r1_weight"] and every % config["r1_every"]):
    bad.add("r1_every")  # lazy R1 groups must divide a fused call
  if not bad & {"seed", "num_seeds"} and (
      config["seed"] + config["num_seeds"] > 2**32):
    bad.add("num_seeds")  # every seed of the run must be a valid seed
  schedule = ("lr_schedule", "lr_warmup_steps", "lr_decay_steps")
  if not bad & set(schedule):
    kind, warmup, end = (config[f] for f in schedule)
    if kind == "constant" and (warmup or end):
      bad.add("lr_schedule")  # warm-up and decay shape only a schedule
    elif kind != "constant" and end <= warmup:
      bad.add("lr_decay_steps")  # the decay needs room after the warm-up
    elif kind != "constant" and "num_steps" not in bad and \
        config["num_steps"] > end:
      bad.add("num_steps")  # the rate would be 0 for the last steps
  return bad


@settings(max_examples=400, deadline=None, derandomize=True)
@given(overrides_strategy)
def test_every_override_is_accepted_or_names_its_field(overrides):
  """Accepted exactly when every value is valid; rejected with the name of
  an invalid field."""
  field, invalid = _classify(overrides), _invalid_fields(overrides)
  assert (field is None) == (not invalid), (field, invalid, overrides)
  assert field is None or field in invalid, (field, invalid, overrides)


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
