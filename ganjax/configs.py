"""Checks an experiment config once, before anything runs.

Every rejected value raises ValueError naming the field, the value and what
would be accepted.
"""

import math

from ganjax import input_pipeline, layers, losses, optimizers, train_step

# Fields that may change when a run is resumed: they do not change the result
# (or, for conv_impl, only within float rounding: both implementations compute
# the same function, so a CPU run can be resumed on a GPU).
RESUMABLE_FIELDS = frozenset({
    "num_steps", "log_every", "sample_every", "checkpoint_every",
    "keep_checkpoints", "steps_per_call", "scan_unroll", "conv_impl",
    "data_source", "data_dir", "tfds_data_dir", "eval_every",
    "eval_num_samples", "eval_seed", "nan_rollbacks", "parallelism"})

_CHOICES = {
    "phase1_bn": ("inference", "batch"),
    "bce": tuple(sorted(losses.BCE)),
    "optimizer": tuple(sorted(optimizers.OPTIMIZERS)),
    "compute_dtype": ("float32", "bfloat16"),
    "conv_impl": ("auto", *layers.IMPLS),
    "data_source": ("auto", "idx", "tfds"),
    "parallelism": train_step.PARALLELISMS,
    "dataset": tuple(sorted(input_pipeline.SPECS)),
}
_POSITIVE_INTS = ("latent_dim", "batch_size", "num_steps", "steps_per_call",
                  "log_every", "sample_every",
                  "checkpoint_every", "keep_checkpoints", "num_sample_images")
_POSITIVE_FLOATS = ("g_learning_rate", "d_learning_rate", "rmsprop_eps")
_UNIT_INTERVAL = ("rmsprop_decay", "adam_b1", "adam_b2")  # [0, 1)


def _fail(field, value, wanted):
  raise ValueError(f"config.{field}={value!r} is invalid: {wanted}.")


def validate(config, num_devices: int) -> None:
  """Raises ValueError naming the first bad field of `config`."""
  for field, choices in _CHOICES.items():
    if config[field] not in choices:
      _fail(field, config[field], f"must be one of {list(choices)}")
  if not isinstance(config.seed, int) or isinstance(config.seed, bool) or not (
      0 <= config.seed < 2**32):
    _fail("seed", config.seed, "must be an integer in [0, 2**32)")
  for field in _POSITIVE_INTS:
    value = config[field]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      _fail(field, value, "must be a positive integer")
  for field in _POSITIVE_FLOATS:
    value = config[field]
    if not isinstance(value, (int, float)) or not math.isfinite(value) or (
        value <= 0):
      _fail(field, value, "must be a finite number > 0")
  for field in _UNIT_INTERVAL:
    value = config[field]
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
      _fail(field, value, "must be a number in [0, 1)")
  for field, meaning in (("scan_unroll", "0 = automatic"),
                         ("eval_every", "0 = never"), ("eval_seed", ""),
                         ("nan_rollbacks", "0 = stop at the first NaN")):
    value = config[field]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      _fail(field, value, "must be an integer >= 0" +
            (f" ({meaning})" if meaning else ""))
  if not isinstance(config.eval_num_samples, int) or (
      config.eval_num_samples < 100):
    _fail("eval_num_samples", config.eval_num_samples,
          "must be an integer >= 100 (the protocol uses 10000)")
  if not isinstance(config.d_dropout, (int, float)) or not (
      0 <= config.d_dropout < 1):
    _fail("d_dropout", config.d_dropout, "must be a number in [0, 1)")
  if config.batch_size % num_devices:
    _fail("batch_size", config.batch_size,
          f"must be divisible by the number of devices ({num_devices}); "
          f"use a multiple of {num_devices}")
  train_size = input_pipeline.get_spec(config.dataset).sizes["train"]
  if config.batch_size > train_size:
    _fail("batch_size", config.batch_size,
          f"must not exceed the training set ({train_size} examples)")
  for field in ("num_steps", "log_every", "sample_every", "checkpoint_every",
                "eval_every"):
    if config[field] % config.steps_per_call:
      _fail(field, config[field],
            f"must be a multiple of config.steps_per_call="
            f"{config.steps_per_call}, since steps run in fused calls of "
            "that many")


def trajectory_fields(config) -> dict:
  """The config fields that decide the result of a run (see RESUMABLE_FIELDS)."""
  return {k: v for k, v in config.to_dict().items()
          if k not in RESUMABLE_FIELDS}


def differences(saved: dict, current: dict) -> list:
  """Human-readable list of the trajectory fields that differ."""
  keys = sorted(set(saved) | set(current))
  return [f"{k}: {saved.get(k, '<absent>')!r} -> {current.get(k, '<absent>')!r}"
          for k in keys if saved.get(k) != current.get(k)]
