"""`train_and_evaluate(config, workdir)`: the whole training run.

The command line (`ganjax.train`), the tests and the benchmarks all call this.
"""

import hashlib
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import ganjax
from ganjax import checkpointing
from ganjax import classifier as classifier_lib
from ganjax import configs
from ganjax import images as images_lib
from ganjax import input_pipeline
from ganjax import layers
from ganjax import metric_writers
from ganjax import metrics as metrics_lib
from ganjax import models
from ganjax import optimizers
from ganjax import sampling
from ganjax import train_step


class TrainingDivergedError(FloatingPointError):
  """A loss or parameter became NaN or Inf."""


# Errors that come from bad input (config, data, workdir, checkpoint) or a
# diverged run; the command line prints their message without a traceback.
USER_ERRORS = (ValueError, input_pipeline.DatasetError,
               checkpointing.CheckpointError, TrainingDivergedError,
               classifier_lib.ClassifierError)

# Evaluation scalars logged with the training metrics (prefixed "eval/").
EVAL_SCALARS = ("fid", "fid_logits", "kid", "classifier_score", "precision",
                "recall", "class_entropy", "classes_covered",
                "conditional_accuracy")  # the last for conditional G only


class Preempted(Exception):
  """SIGTERM or SIGINT arrived; a checkpoint of the current step was saved."""

  def __init__(self, signum, step, workdir):
    self.signum, self.step = signum, step
    super().__init__(
        f"Stopped by {signal.Signals(signum).name} at step {step}; saved "
        f"{workdir}/checkpoints/{step}. Run the same command to resume.")


class _StopSignals:
  """Turns SIGTERM/SIGINT into a flag that the loop checks after each call.

  A second SIGINT interrupts at once. Installed only in the main thread; the
  previous handlers come back on exit.
  """

  def __init__(self):
    self.signum, self._previous = None, {}

  def _handle(self, signum, frame):
    if signum == signal.SIGINT and self.signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signum = signum

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def make_keys(seed: int) -> dict:
  """The run's named random streams, all from one root key."""
  init, noise, data, sample = jax.random.split(jax.random.key(seed), 4)
  return {"init": init, "noise": noise, "data": data, "sample": sample}


def initial_state(config, keys, num_examples: int):
  """The state at step 0, drawn from `keys` "init", "noise" and "data"."""
  generator, discriminator = models.make_models(config, train_step.AXIS)
  g_tx, d_tx = optimizers.make_optimizers(config)
  return train_step.init_state(
      generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
      latent_dim=config.latent_dim,
      image_shape=input_pipeline.get_spec(config.dataset).image_shape,
      num_examples=num_examples, init_key=keys["init"],
      noise_key=keys["noise"], data_key=keys["data"],
      ema=config.ema_decay > 0)


def compile_train_fn(config, devices, bce=None):
  """The pmapped call of `config.steps_per_call` steps over `devices`; `bce`
  overrides the config's cross-entropy (the tests count its traces with it)."""
  generator, discriminator = models.make_models(config, train_step.AXIS)
  g_tx, d_tx = optimizers.make_optimizers(config)
  return train_step.make_train_fn(
      generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
      recipe=train_step.Recipe.from_config(config, bce),
      batch_size=config.batch_size, latent_dim=config.latent_dim,
      steps_per_call=config.steps_per_call, scan_unroll=config.scan_unroll,
      devices=devices, parallelism=config.parallelism)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """A run's config.json, with fields added since it was written filled in
  with the values it ran with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: --workdir={workdir} is "
                            "not a ganjax run directory.")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(
        configs.with_added_defaults(json.load(f)))


def restore_generator(workdir: str, step=None):
  """(generator module, its variables, the step, the run's config) from the
  latest or a given checkpoint of the run in `workdir`."""
  config = load_run_config(workdir)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
  step = checkpointer.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints.")
  template = jax.eval_shape(lambda: initial_state(
      config, make_keys(0),
      input_pipeline.get_spec(config.dataset).sizes["train"]))
  state = checkpointer.restore(step, template, config)
  checkpointer.close()
  sampler, _ = models.make_models(config, axis_name=None)
  return sampler, train_step.sampling_variables(state), step, config


def prepare_workdir(workdir: str, config) -> None:
  """Creates `workdir`, checks it is writable and holds no other run."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"--workdir={workdir} is not writable ({e}). Choose a "
                     "directory you can write to.") from e
  saved_path = os.path.join(workdir, "config.json")
  if os.path.exists(saved_path):
    with open(saved_path, encoding="utf-8") as f:
      saved = json.load(f)
    diffs = configs.differences(configs.trajectory_fields(saved),
                                configs.trajectory_fields(config))
    if diffs:
      raise ValueError(
          f"--workdir={workdir} holds a run of another config; these fields "
          f"differ (saved -> now): {'; '.join(diffs)}. Use a new --workdir, "
          "or the saved values to resume that run.")
  metric_writers.write_json(saved_path, config.to_dict())


def _git(*args):
  try:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True,
        cwd=os.path.dirname(os.path.abspath(ganjax.__file__)), timeout=10,
        check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


def config_sha256(config) -> str:
  """SHA-256 of the fields that decide the result (`configs.trajectory_fields`)."""
  return hashlib.sha256(json.dumps(configs.trajectory_fields(config),
                                   sort_keys=True).encode()).hexdigest()


def write_manifest(workdir, config, data_info, conv_impl, devices):
  """run.json, the reproduce report: everything that can make two runs
  differ. `python -m ganjax.reproduce` prints it and compares two runs."""
  import flax, optax, orbax.checkpoint  # pylint: disable=g-import-not-at-top,multiple-imports
  status = _git("status", "--porcelain", "--untracked-files=no")
  manifest = {
      "ganjax": ganjax.__version__, "jax": jax.__version__,
      "jaxlib": jax.lib.__version__, "flax": flax.__version__,
      "optax": optax.__version__, "orbax_checkpoint":
          orbax.checkpoint.__version__, "numpy": np.__version__,
      "python": sys.version.split()[0], "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      "backend": jax.default_backend(),
      "devices": [d.device_kind for d in devices],
      "process_count": jax.process_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "environment": {k: v for k, v in sorted(os.environ.items())
                      if k.startswith(("JAX_", "XLA_", "TF_CPP"))},
      "jax_config": {name: jax.config.values.get(name) for name in (
          "jax_enable_x64", "jax_default_matmul_precision",
          "jax_threefry_partitionable", "jax_numpy_rank_promotion")},
      "seed": config.seed, "config_sha256": config_sha256(config),
      "git_commit": _git("rev-parse", "HEAD"),
      "git_dirty": None if status is None else bool(status),
      "conv_impl_resolved": conv_impl,
      "phase1_bn": config.phase1_bn, "bce": config.bce,
      "data": data_info, "argv": sys.argv,
      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  metric_writers.write_json(os.path.join(workdir, "run.json"), manifest)


_DIVERGED_HELP = (
    "It was not checkpointed; the newest checkpoint before this step is the "
    "last good one. Resume from it with a lower learning rate, or set "
    "config.nan_rollbacks=N to roll back and continue with a new noise stream.")


@jax.jit
def _params_finite(*param_trees):
  """One bool per tree: all its entries finite (one device round trip)."""
  return [jnp.all(jnp.stack([jnp.isfinite(x).all()
                             for x in jax.tree.leaves(tree)]))
          for tree in param_trees]


def _check_finite(step, scalars, state=None):
  for name, value in scalars.items():
    if not np.isfinite(value):
      raise TrainingDivergedError(
          f"Training diverged at step {step}: {name} = {value}. "
          + _DIVERGED_HELP)
  if state is not None:
    finite = jax.device_get(_params_finite(state.g_params, state.d_params))
    for name, ok in zip(("g_params", "d_params"), finite):
      if not ok:
        raise TrainingDivergedError(
            f"Training diverged at step {step}: {name} holds NaN or Inf. "
            + _DIVERGED_HELP)


def evaluate_generator(evaluator, sampler, g_vars, workdir, step, latent_dim,
                       num_samples, seed) -> dict:
  """Scores G (checkpoint `step` of the run in `workdir`) by the protocol;
  writes workdir/eval/step_<step>.json and logs the headline numbers."""
  result = metrics_lib.evaluate_generator(evaluator, sampler, g_vars,
                                          latent_dim, num_samples, seed)
  result["step"] = step
  metric_writers.write_json(metric_writers.eval_path(workdir, step), result)
  logging.info("eval at step %d: FID %.3f  KID %.5f  precision %.3f  recall "
               "%.3f  classes %d  (%.1f s)", step, result["fid"],
               result["kid"], result["precision"], result["recall"],
               result["classes_covered"], result["seconds"])
  return result


class _Run:
  """The pieces of one training run, built once from the config."""

  def __init__(self, config, workdir):
    self.config = config
    self.workdir = workdir
    self.devices = jax.local_devices()
    configs.validate(config, len(self.devices))
    prepare_workdir(workdir, config)
    self.conv_impl = layers.resolve_impl(config.conv_impl)
    self.keys = make_keys(config.seed)
    images, labels, self.data_info = input_pipeline.load(
        config.dataset, "train", source=config.data_source,
        data_dir=config.data_dir or None,
        tfds_data_dir=config.tfds_data_dir or None)
    self.data = train_step.replicate_data(
        images, self.devices, labels if config.conditional else None)
    self.num_examples = images.shape[0]
    self.sampler, _ = models.make_models(config, axis_name=None)
    self.init_state = lambda: initial_state(config, self.keys,
                                            self.num_examples)
    self.train_fn = compile_train_fn(config, self.devices)
    self.fixed_z = jax.random.normal(
        self.keys["sample"], (config.num_sample_images, config.latent_dim))
    # A conditional G's grid has one column per class.
    self.num_classes = self.sampler.num_classes
    self.fixed_labels = sampling.balanced_labels(
        0, config.num_sample_images, self.num_classes)
    self.evaluator = None
    if config.eval_every:  # built now, so a missing classifier fails early
      self.evaluator = metrics_lib.Evaluator(
          config.dataset, data_dir=config.data_dir or None,
          source=config.data_source,
          tfds_data_dir=config.tfds_data_dir or None)

  def evaluate(self, state, step):
    return evaluate_generator(
        self.evaluator, self.sampler, train_step.sampling_variables(state),
        self.workdir, step,
        self.config.latent_dim, self.config.eval_num_samples,
        self.config.eval_seed)

  def write_grid(self, state, name):
    fakes = sampling.inference_fn(self.sampler)(
        train_step.sampling_variables(state), self.fixed_z, self.fixed_labels)
    images_lib.save_png(os.path.join(self.workdir, "samples", name),
                        images_lib.grid(images_lib.to_uint8(fakes),
                                        columns=self.num_classes or None))

  def meta(self):
    return {"config": configs.trajectory_fields(self.config),
            "ganjax": ganjax.__version__, "jax": jax.__version__,
            "data_sha256": self.data_info["sha256"]}


def train_and_evaluate(config, workdir: str):
  """Trains (or resumes) the GAN of `config` in `workdir`.

  Resumes from the newest checkpoint in `workdir/checkpoints` if there is one;
  a resumed run is bit-identical to one that never stopped.

  Returns:
    The final TrainState (host-side copies of the arrays are not made).
  """
  run = _Run(config, workdir)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
  state = _restore_latest(run, checkpointer)
  start = int(state.step)
  if start:
    logging.info("Resumed from %s/checkpoints/%d", workdir, start)
  write_manifest(workdir, config, run.data_info, run.conv_impl, run.devices)
  writer = metric_writers.MetricWriter(workdir, start)
  best = _BestCheckpoint(workdir, start)
  logging.info("Training %s from step %d to %d on %d %s device(s), conv_impl=%s",
               config.dataset, start, config.num_steps, len(run.devices),
               jax.default_backend(), run.conv_impl)
  try:
    for rollback in itertools.count(1):
      try:
        state = _loop(run, state, start, checkpointer, writer, best)
        break
      except TrainingDivergedError as e:
        if rollback > config.nan_rollbacks:
          raise
        state, start = _roll_back(run, checkpointer, rollback, e)
        writer.rewind(start)
        writer.write(start, {"rollback": rollback})
  finally:
    checkpointer.close()
    best.close()
    writer.close()
  run.write_grid(state, "final.png")
  return state


def _restore_latest(run, checkpointer):
  """The newest checkpoint's state (or the initial one), on the devices."""
  state = run.init_state()
  step = checkpointer.latest_step()
  if step is not None:
    state = checkpointer.restore(step, state, run.config)
  return train_step.replicate_state(state, run.devices)


def _roll_back(run, checkpointer, rollback, error):
  """Back to the newest checkpoint, with noise stream number `rollback`.

  The noise key (noise and dropout) is folded with the rollback's number; the
  data order is kept. Deterministic: a rerun that diverges at the same place
  takes the same new stream.
  """
  checkpointer.wait()
  state = _restore_latest(run, checkpointer)
  noise_key = jax.random.fold_in(
      jax.random.wrap_key_data(state.noise_key), rollback)
  state = state.replace(noise_key=jax.random.key_data(noise_key))
  step = int(state.step)
  logging.warning("%s Rollback %d of at most %d (config.nan_rollbacks): "
                  "continuing from step %d with a new noise stream.", error,
                  rollback, run.config.nan_rollbacks, step)
  return state, step


class _BestCheckpoint:
  """checkpoints_best/: the checkpoint with the lowest FID so far (one kept).

  Its meta records the FID; a resumed run continues from that value. A best
  checkpoint newer than the resumed step (written before a crash) is deleted:
  the resumed run replays those steps and writes it again.
  """

  def __init__(self, workdir, start):
    self.checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints_best"), 1)
    self.fid = float("inf")
    step = self.checkpointer.latest_step()
    if step is not None and step > start:
      self.checkpointer.delete(step)
    elif step is not None:
      self.fid = self.checkpointer.read_meta(step).get("fid", self.fid)

  def offer(self, step, state, meta, fid):
    if fid < self.fid:
      self.fid = fid
      self.checkpointer.save(step, state, {**meta, "fid": fid})

  def close(self):
    self.checkpointer.close()


def _loop(run, state, start, checkpointer, writer, best):
  config = run.config
  step, pending = start, None
  t_log, step_log, t_start = time.perf_counter(), start, time.perf_counter()

  def report(at_step, metrics):
    nonlocal t_log, step_log
    scalars = {k: float(v) for k, v in jax.device_get(metrics).items()}
    _check_finite(at_step, scalars)
    now = time.perf_counter()
    scalars["steps_per_s"] = (at_step - step_log) / max(now - t_log, 1e-9)
    t_log, step_log = now, at_step
    writer.write(at_step, scalars)
    eta = (config.num_steps - at_step) / max(scalars["steps_per_s"], 1e-9)
    logging.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(x) %.3f  "
                 "D(G(z)) %.3f  %.2f steps/s  ETA %s", at_step,
                 config.num_steps, scalars["d_loss"], scalars["g_loss"],
                 scalars["d_real"], scalars["d_fake"], scalars["steps_per_s"],
                 time.strftime("%H:%M:%S", time.gmtime(eta)))

  with _StopSignals() as stop:
    while step < config.num_steps:
      state, metrics = run.train_fn(state, run.data)  # state is donated
      step += config.steps_per_call
      if pending is not None:  # read the previous call's metrics only now
        report(*pending)
        pending = None
      done = step == config.num_steps
      checkpoint = step % config.checkpoint_every == 0 or done
      if checkpoint or stop.signum is not None:
        if step % config.log_every == 0:
          report(step, metrics)
        else:
          _check_finite(step, {k: float(v) for k, v in metrics.items()})
        _check_finite(step, {}, state)
        checkpointer.save(step, state, run.meta())
      elif step % config.log_every == 0:
        pending = (step, metrics)
      if step % config.sample_every == 0:
        run.write_grid(state, f"step_{step:07d}.png")
      if config.eval_every and (step % config.eval_every == 0 or done):
        result = run.evaluate(state, step)
        writer.write(step, {f"eval/{k}": result[k] for k in EVAL_SCALARS
                            if k in result})
        best.offer(step, state, run.meta(), result["fid"])
      if stop.signum is not None and not done:
        raise Preempted(stop.signum, step, run.workdir)
  if pending is not None:
    report(*pending)
  logging.info("Finished %d steps in %.1f s", step - start,
               time.perf_counter() - t_start)
  return state
