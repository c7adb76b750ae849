"""Checks an experiment config once, before anything runs.

Every rejected value raises ValueError naming the field, the value and what
would be accepted.
"""

import math

from ganjax import augment
from ganjax import classifier
from ganjax import input_pipeline
from ganjax import layers
from ganjax import losses
from ganjax import models
from ganjax import optimizers
from ganjax import parallel
from ganjax import regularizers
from ganjax import sweeps

# Fields that may change when a run is resumed: they do not change the result
# (or, for conv_impl, only within float rounding: both implementations compute
# the same function, so a CPU run can be resumed on a GPU).
RESUMABLE_FIELDS = frozenset({
    "num_steps", "log_every", "sample_every", "checkpoint_every",
    "keep_checkpoints", "steps_per_call", "scan_unroll", "conv_impl",
    "data_source", "data_dir", "tfds_data_dir", "eval_every",
    "eval_num_samples", "eval_seed", "nan_rollbacks", "parallelism",
    "seed_batching"})


def _choices() -> dict:
  """Each named field's accepted values (the registries as they are now)."""
  return {
      "phase1_bn": ("inference", "batch"),
      "bce": tuple(sorted(losses.BCE)),
      "loss": losses.NAMES,
      "architecture": tuple(sorted(models.ARCHITECTURES)),
      "optimizer": tuple(sorted(optimizers.OPTIMIZERS)),
      "lr_schedule": optimizers.SCHEDULES,
      "compute_dtype": ("float32", "bfloat16"),
      "conv_impl": ("auto", *layers.IMPLS),
      "data_source": input_pipeline.SOURCES,
      "parallelism": parallel.PARALLELISMS,
      "seed_batching": parallel.SEED_BATCHINGS,
      "dataset": tuple(sorted(input_pipeline.SPECS)),
  }


_POSITIVE_INTS = ("num_seeds", "latent_dim", "batch_size", "num_steps",
                  "steps_per_call", "g_width", "d_width", "r1_every",
                  "log_every", "sample_every",
                  "checkpoint_every", "keep_checkpoints", "num_sample_images")
_POSITIVE_FLOATS = ("g_learning_rate", "d_learning_rate", "rmsprop_eps")
_UNIT_INTERVAL = ("rmsprop_decay", "adam_b1", "adam_b2", "d_dropout",
                  "ema_decay")  # [0, 1)
_NON_NEGATIVE_FLOATS = ("gp_weight", "r1_weight")

# Fields added after runs were made: a saved config without them had these
# values (so older runs still resume and evaluate).
ADDED_DEFAULTS = {
    "architecture": "dcgan28", "g_width": 64, "d_width": 64,
    "conditional": False, "spectral_norm": False, "loss": "reference",
    "gp_weight": 0.0, "r1_weight": 0.0, "r1_every": 1, "augment": "",
    "ema_decay": 0.0, "ema_start": 0, "num_seeds": 1, "seed_batching": "auto",
    "lr_schedule": "constant", "lr_warmup_steps": 0, "lr_decay_steps": 0,
    # Before these fields, DiffAugment shifted by up to size // 8 pixels and
    # cut out (size // 2 + 1) // 2 * 2 - 1 (13 at 28 px, 15 at 32): these
    # fractions give exactly those sizes and draws at 28 and 32 px.
    "augment_translation": 0.11, "augment_cutout": 0.46, "penalties": "",
    "ada_target": 0.0, "ada_kimg": 100.0, "sweep": "", "augment_fill": 0.0,
}


def with_added_defaults(fields: dict) -> dict:
  """A saved config (dict) with the fields added since filled in."""
  return {**ADDED_DEFAULTS, **fields}


def _fail(field, value, wanted):
  raise ValueError(f"config.{field}={value!r} is invalid: {wanted}.")


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  """A finite int or float (not a bool, which Python counts as an int)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def validate(config, num_devices: int) -> None:
  """Raises ValueError naming the first bad field of `config`."""
  for field, choices in _choices().items():
    if config[field] not in choices:
      _fail(field, config[field], f"must be one of {list(choices)}")
  if not _is_int(config.seed) or not 0 <= config.seed < 2**32:
    _fail("seed", config.seed, "must be an integer in [0, 2**32)")
  for field in _POSITIVE_INTS:
    if not _is_int(config[field]) or config[field] < 1:
      _fail(field, config[field], "must be a positive integer")
  if config.seed + config.num_seeds > 2**32:
    _fail("num_seeds", config.num_seeds,
          f"seeds {config.seed}..{config.seed + config.num_seeds - 1} must "
          "all be below 2**32; use a smaller config.seed")
  for field in _POSITIVE_FLOATS:
    if not _is_number(config[field]) or config[field] <= 0:
      _fail(field, config[field], "must be a finite number > 0")
  for field in _UNIT_INTERVAL:
    if not _is_number(config[field]) or not 0 <= config[field] < 1:
      _fail(field, config[field], "must be a number in [0, 1)")
  for field in ("conditional", "spectral_norm"):
    if not isinstance(config[field], bool):
      _fail(field, config[field], "must be True or False")
  for field in _NON_NEGATIVE_FLOATS:
    if not _is_number(config[field]) or config[field] < 0:
      _fail(field, config[field], "must be a finite number >= 0 (0 = off)")
  if not isinstance(config.augment, str):
    _fail("augment", config.augment, "must be a string such as "
          "'color,translation,cutout'")
  augment.policy_from_config(config)
  augment.adaptive_from_config(config)
  if not isinstance(config.penalties, str):
    _fail("penalties", config.penalties, "must be a string such as "
          "'r1:10:16' (name:weight[:every], comma-separated)")
  extra = regularizers.parse(config.penalties)
  for name in ("gp", "r1"):
    if config[f"{name}_weight"] and name in [p.name for p in extra]:
      _fail("penalties", config.penalties,
            f"{name} is set by config.{name}_weight already; give it once")
  lazy = [p.every for p in extra]
  if config.r1_weight:
    lazy.append(config.r1_every)
  for field, meaning in (("scan_unroll", "0 = automatic"),
                         ("ema_start", "the first step averaged"),
                         ("lr_warmup_steps", "0 = no warm-up"),
                         ("lr_decay_steps", "the step the rate reaches 0"),
                         ("eval_every", "0 = never"), ("eval_seed", ""),
                         ("nan_rollbacks", "0 = stop at the first NaN")):
    if not _is_int(config[field]) or config[field] < 0:
      _fail(field, config[field], "must be an integer >= 0" +
            (f" ({meaning})" if meaning else ""))
  if config.lr_schedule == "constant":
    if config.lr_warmup_steps or config.lr_decay_steps:
      _fail("lr_schedule", config.lr_schedule,
            "lr_warmup_steps and lr_decay_steps only shape the 'linear' and "
            "'cosine' schedules; choose one, or set both to 0")
  else:
    if config.lr_decay_steps <= config.lr_warmup_steps:
      _fail("lr_decay_steps", config.lr_decay_steps,
            f"must exceed config.lr_warmup_steps={config.lr_warmup_steps}: "
            f"the {config.lr_schedule} schedule decays to 0 between them "
            "(usually lr_decay_steps = num_steps)")
    if config.num_steps > config.lr_decay_steps:
      _fail("num_steps", config.num_steps,
            f"runs past config.lr_decay_steps={config.lr_decay_steps}, "
            "where the learning rate has reached 0; raise lr_decay_steps "
            "with it (in a new run: it changes the trajectory)")
  if not _is_int(config.eval_num_samples) or config.eval_num_samples < 100:
    _fail("eval_num_samples", config.eval_num_samples,
          "must be an integer >= 100 (the protocol uses 10000)")
  if config.batch_size % num_devices:
    _fail("batch_size", config.batch_size,
          f"must be divisible by the number of devices ({num_devices}); "
          f"use a multiple of {num_devices}")
  spec = input_pipeline.get_spec(config.dataset)
  size = models.ARCHITECTURES[config.architecture][2]
  if tuple(spec.image_shape[:2]) != size:
    fitting = sorted(name for name, (_, _, hw) in models.ARCHITECTURES.items()
                     if hw == tuple(spec.image_shape[:2]))
    _fail("architecture", config.architecture,
          f"it makes {size[0]}x{size[1]} images and {config.dataset} has "
          f"{spec.image_shape[0]}x{spec.image_shape[1]}; use one of {fitting}")
  if config.eval_every and (spec.base or config.dataset) not in (
      classifier.WEIGHTS):
    _fail("eval_every", config.eval_every,
          f"no evaluation classifier exists for {config.dataset}; set 0 "
          "(evaluate samples with your own tools)")
  period = math.lcm(1, *lazy)
  if config.steps_per_call % period:
    field = ("r1_every" if config.r1_weight
             and config.steps_per_call % config.r1_every else "penalties")
    _fail(field, config[field],
          f"the lazy penalties' period ({period} steps) must divide "
          f"config.steps_per_call={config.steps_per_call}: each fused call "
          "holds whole periods")
  for field in ("num_steps", "log_every", "sample_every", "checkpoint_every",
                "eval_every"):
    if config[field] % config.steps_per_call:
      _fail(field, config[field],
            f"must be a multiple of config.steps_per_call="
            f"{config.steps_per_call}, since steps run in fused calls of "
            "that many")
  for overrides in sweeps.points(config):  # [{}] without a sweep
    if overrides:
      try:
        validate(sweeps.point_config(config, overrides), num_devices)
      except ValueError as e:
        raise ValueError(f"config.sweep={config.sweep!r} is invalid at its "
                         f"point {overrides}: {e}") from None


def validate_data(config, num_examples: int, origin: str) -> None:
  """Checks the config against the training data actually loaded (an .npz
  may hold any number of examples)."""
  if config.batch_size > num_examples:
    _fail("batch_size", config.batch_size,
          f"must not exceed the training set ({num_examples} examples in "
          f"{origin}): each step draws a batch without repeats")


def trajectory_fields(config) -> dict:
  """The fields of a config (ConfigDict, or a dict such as a saved
  config.json) that decide the result of a run (see RESUMABLE_FIELDS)."""
  fields = (config.to_dict() if hasattr(config, "to_dict")
            else with_added_defaults(config))
  return {k: v for k, v in fields.items() if k not in RESUMABLE_FIELDS}


def differences(saved: dict, current: dict) -> list:
  """Human-readable list of the trajectory fields that differ."""
  keys = sorted(set(saved) | set(current))
  return [f"{k}: {saved.get(k, '<absent>')!r} -> {current.get(k, '<absent>')!r}"
          for k in keys if saved.get(k) != current.get(k)]
