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
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

import ganjax
from ganjax import checkpointing
from ganjax import classifier as classifier_lib
from ganjax import configs
from ganjax import distributed
from ganjax import images as images_lib
from ganjax import input_pipeline
from ganjax import layers
from ganjax import metric_writers
from ganjax import metrics as metrics_lib
from ganjax import models
from ganjax import optimizers
from ganjax import sampling
from ganjax import seeds as seeds_lib
from ganjax import train_step


class TrainingDivergedError(FloatingPointError):
  """A loss or parameter became NaN or Inf (in seed number `member` of the
  run's seeds)."""

  def __init__(self, message, member=0):
    super().__init__(message)
    self.member = member


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
  """SIGTERM or SIGINT arrived (in a multi-process run: at any of the
  processes); a checkpoint of the current step was saved."""

  def __init__(self, signum, step, checkpoints):
    self.signum, self.step = signum, step
    cause = (f"Stopped by {signal.Signals(signum).name}" if signum else
             "Stopped with the run's other processes (a SIGTERM or SIGINT "
             "reached one of them)")
    super().__init__(f"{cause} at step {step}; saved {checkpoints}/{step}. "
                     "Run the same command to resume.")


class _StopSignals:
  """Turns SIGTERM/SIGINT into a stop at the next call boundary;
  `should_stop()` is asked once per compiled call.

  One process: a flag set by the handler, which says so on stderr at once;
  a SIGINT after that kills the process (the default action).

  Several processes must stop at the same call, or one enters the collective
  checkpoint while another starts the next step and both wait forever. They
  agree through JAX's preemption service (`reached_preemption_sync_point`):
  its own handler catches SIGTERM at any process and all processes return
  True at the same call. Python's handler is therefore left off SIGTERM, and
  SIGINT is passed on to it as SIGTERM.

  Handlers are installed only in the main thread; the previous ones come back
  on exit.
  """

  def __init__(self):
    self.signum, self._previous = None, {}
    self._multi = jax.process_count() > 1
    self._calls = 0

  def _handle(self, signum, frame):
    del frame
    self.signum = signum
    if self._multi:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption notifier
      return
    # Said at once (the save waits for the steps already dispatched). From
    # now on Ctrl-C has its default action, which the kernel carries out
    # even while Python waits on the device; checkpoints are written
    # atomically, so the complete ones survive it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.write(2, (f"\n{signal.Signals(signum).name}: stopping after the steps "
                 "already running, then saving a checkpoint. Ctrl-C again "
                 "quits at once without saving (the checkpoints written so "
                 "far are kept).\n").encode())

  def should_stop(self) -> bool:
    if not self._multi:
      return self.signum is not None
    self._calls += 1  # the same count at every process
    return multihost_utils.reached_preemption_sync_point(self._calls)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      signums = ((signal.SIGINT,) if self._multi
                 else (signal.SIGTERM, signal.SIGINT))
      for signum in signums:
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


def compile_train_fn(config, devices, bce=None, seeds=False):
  """The pmapped call of `config.steps_per_call` steps over `devices`; `bce`
  overrides the config's cross-entropy (the tests count its traces with it).
  With `seeds`, it maps a tuple of `config.num_seeds` states (one per seed)
  instead of one state (see `train_step.over_seeds`)."""
  generator, discriminator = models.make_models(config, train_step.AXIS)
  g_tx, d_tx = optimizers.make_optimizers(config)
  return train_step.make_train_fn(
      generator=generator, discriminator=discriminator, g_tx=g_tx, d_tx=d_tx,
      recipe=train_step.Recipe.from_config(config, bce),
      batch_size=config.batch_size, latent_dim=config.latent_dim,
      steps_per_call=config.steps_per_call, scan_unroll=config.scan_unroll,
      devices=devices, parallelism=config.parallelism,
      num_seeds=config.num_seeds if seeds else None,
      seed_batching=config.seed_batching)


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


def restore_state(workdir: str, step=None):
  """(TrainState, its step, the run's config) from the latest or a given
  checkpoint of the run in `workdir`, on this process's first device."""
  config = load_run_config(workdir)
  if config.num_seeds > 1:
    raise FileNotFoundError(
        f"{workdir} is a run of {config.num_seeds} seeds; each seed's "
        "checkpoints are in its own run directory: --workdir="
        f"{seeds_lib.member_workdir(workdir, config.seed)} (or seed_<s> for "
        f"s in {seeds_lib.seeds_of(config)}).")
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints.")
    # The data order's length is the training set's, which for an .npz
    # dataset is whatever it held: read it from the checkpoint.
    num_examples = checkpointing.saved_shape(
        checkpointer.read_meta(step), "perm",
        default=(input_pipeline.get_spec(config.dataset).sizes["train"],))[0]
    template = jax.eval_shape(lambda: initial_state(config, make_keys(0),
                                                    num_examples))
    state = checkpointer.restore(step, template, config)
  finally:
    checkpointer.close()
  return state, step, config


def restore_generator(workdir: str, step=None):
  """(generator module, its sampling variables, the step, the run's config)
  from the latest or a given checkpoint of the run in `workdir`."""
  state, step, config = restore_state(workdir, step)
  sampler, _ = models.make_models(config, axis_name=None)
  return (sampler, sampling.sampling_variables(sampler, state,
                                               config.latent_dim),
          step, config)


def prepare_workdir(workdir: str, config) -> None:
  """Creates `workdir`, checks it is writable and holds no other run."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test{jax.process_index()}")
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
  if distributed.is_writer():
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
  if not distributed.is_writer():
    return
  import flax, optax, orbax.checkpoint  # pylint: disable=g-import-not-at-top,multiple-imports
  status = _git("status", "--porcelain", "--untracked-files=no")
  manifest = {
      "ganjax": ganjax.__version__, "jax": jax.__version__,
      "jaxlib": jax.lib.__version__, "flax": flax.__version__,
      "optax": optax.__version__, "orbax_checkpoint":
          orbax.checkpoint.__version__, "numpy": np.__version__,
      "python": sys.version.split()[0], "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      # XLA:CPU sizes its thread pool by the usable cores, and the float
      # results of a step depend on it (`taskset -c 0` changes them).
      "cpus_usable": (len(os.sched_getaffinity(0))
                      if hasattr(os, "sched_getaffinity") else os.cpu_count()),
      "backend": jax.default_backend(),
      "devices": [d.device_kind for d in devices],
      "process_count": jax.process_count(),
      "seed_batching": (train_step.resolve_seed_batching(config.seed_batching)
                        if config.num_seeds > 1 else None),
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


def _check_finite(step, scalars, state=None, member=0, where=""):
  """Raises TrainingDivergedError naming the step, the value and, in a
  run of several seeds, the seed (`where`)."""
  for name, value in scalars.items():
    if not np.isfinite(value):
      raise TrainingDivergedError(
          f"Training diverged at step {step}{where}: {name} = {value}. "
          + _DIVERGED_HELP, member)
  if state is not None:
    finite = jax.device_get(_params_finite(state.g_params, state.d_params))
    for name, ok in zip(("g_params", "d_params"), finite):
      if not ok:
        raise TrainingDivergedError(
            f"Training diverged at step {step}{where}: {name} holds NaN or "
            "Inf. " + _DIVERGED_HELP, member)


def evaluate_generator(evaluator, sampler, g_vars, workdir, step, latent_dim,
                       num_samples, seed) -> dict:
  """Scores G (checkpoint `step` of the run in `workdir`) by the protocol;
  writes workdir/eval/step_<step>.json and logs the headline numbers."""
  result = metrics_lib.evaluate_generator(evaluator, sampler, g_vars,
                                          latent_dim, num_samples, seed)
  result["step"] = step
  if distributed.is_writer():
    metric_writers.write_json(metric_writers.eval_path(workdir, step), result)
  logging.info("eval at step %d: FID %.3f  KID %.5f  precision %.3f  recall "
               "%.3f  classes %d  (%.1f s)", step, result["fid"],
               result["kid"], result["precision"], result["recall"],
               result["classes_covered"], result["seconds"])
  return result


def _local(tree):
  """`tree` as this process's own arrays: in a multi-process run, a jitted
  function given arrays spread over all processes would run on all of
  them, so what one process samples on its own is fetched first."""
  return jax.device_get(tree) if jax.process_count() > 1 else tree


class _Member:
  """One seed of a run: its config, run directory, keys and outputs. A run of
  one seed has one member, the run itself."""

  def __init__(self, config, workdir, label):
    self.config, self.workdir = config, workdir
    self.label = label  # "" for a one-seed run, else " (seed <s>)"
    self.keys = make_keys(config.seed)
    self.fixed_z = jax.random.normal(
        self.keys["sample"], (config.num_sample_images, config.latent_dim))
    self.checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    self.writer = self.best = None  # opened at the start step

  def open_outputs(self, start):
    self.writer = (metric_writers.MetricWriter(self.workdir, start)
                   if distributed.is_writer() else metric_writers.NullWriter())
    self.best = _BestCheckpoint(self.workdir, start)

  def close(self):
    try:
      self.checkpointer.close()
    finally:
      for output in (self.best, self.writer):
        if output is not None:
          output.close()


class _Run:
  """The pieces of one training run, built once from the config."""

  def __init__(self, config, workdir):
    self.config = config
    self.workdir = workdir
    self.devices = jax.devices()  # of all processes in a multi-process run
    configs.validate(config, len(self.devices))
    images, labels, self.data_info = input_pipeline.load(
        config.dataset, "train", source=config.data_source,
        data_dir=config.data_dir or None,
        tfds_data_dir=config.tfds_data_dir or None)
    configs.validate_data(config, images.shape[0], self.data_info["origin"])
    prepare_workdir(workdir, config)  # after every check of the input
    self.conv_impl = layers.resolve_impl(config.conv_impl)
    self.evaluator = None
    if config.eval_every:  # built now, so a missing classifier fails early
      self.evaluator = metrics_lib.Evaluator(
          config.dataset, data_dir=config.data_dir or None,
          source=config.data_source,
          tfds_data_dir=config.tfds_data_dir or None)
    self.data = train_step.replicate_data(
        images, self.devices, labels if config.conditional else None)
    self.num_examples = images.shape[0]
    self.sampler, _ = models.make_models(config, axis_name=None)
    self.train_fn = compile_train_fn(config, self.devices, seeds=True)
    # A conditional G's grid has one column per class.
    self.num_classes = self.sampler.num_classes
    self.fixed_labels = sampling.balanced_labels(
        0, config.num_sample_images, self.num_classes)
    several = config.num_seeds > 1
    members = seeds_lib.members(config, workdir)
    if several:  # every seed's directory is checked before any is opened
      for member_config, member_workdir in members:
        prepare_workdir(member_workdir, member_config)
    self.members = [_Member(c, w, f" (seed {c.seed})" if several else "")
                    for c, w in members]
    self.checkpoints = (os.path.join(workdir, "seed_*", "checkpoints")
                        if several else os.path.join(workdir, "checkpoints"))

  def init_state(self, member):
    return initial_state(member.config, member.keys, self.num_examples)

  def sampling_variables(self, state):
    g_fields = ("g_params", "g_batch_stats", "g_ema_params")
    local = _local({name: getattr(state, name) for name in g_fields})
    return sampling.sampling_variables(self.sampler, state.replace(**local),
                                       self.config.latent_dim)

  def evaluate(self, member, state, step):
    return evaluate_generator(
        self.evaluator, self.sampler, self.sampling_variables(state),
        member.workdir, step,
        self.config.latent_dim, self.config.eval_num_samples,
        self.config.eval_seed)

  def write_grids(self, states, name):
    if not distributed.is_writer():
      return
    for member, state in zip(self.members, states):
      fakes = sampling.inference_fn(self.sampler)(
          self.sampling_variables(state), member.fixed_z,
          self.fixed_labels)
      images_lib.save_png(os.path.join(member.workdir, "samples", name),
                          images_lib.grid(images_lib.to_uint8(fakes),
                                          columns=self.num_classes or None))

  def meta(self, member):
    return {"config": configs.trajectory_fields(member.config),
            "ganjax": ganjax.__version__, "jax": jax.__version__,
            "data_sha256": self.data_info["sha256"]}


def train_and_evaluate(config, workdir: str):
  """Trains (or resumes) the GAN of `config` in `workdir`.

  Resumes from the newest checkpoint in `workdir/checkpoints` if there is one;
  a resumed run is bit-identical to one that never stopped. With
  `config.num_seeds` > 1, trains the seeds side by side, each in
  `workdir/seed_<s>` (see ganjax/seeds.py).

  Returns:
    The final TrainState (host-side copies of the arrays are not made); a
    tuple of them, one per seed, for a run of several seeds.
  """
  run = _Run(config, workdir)
  try:
    states = _restore_latest(run)
    start = int(states[0].step)
    if start:
      logging.info("Resumed from %s/%d", run.checkpoints, start)
    for member in run.members:
      member.open_outputs(start)
      if config.num_seeds > 1:
        write_manifest(member.workdir, member.config, run.data_info,
                       run.conv_impl, run.devices)
    write_manifest(workdir, config, run.data_info, run.conv_impl, run.devices)
    logging.info("Training %s from step %d to %d on %d %s device(s), "
                 "conv_impl=%s, %d seed(s)", config.dataset, start,
                 config.num_steps, len(run.devices), jax.default_backend(),
                 run.conv_impl, config.num_seeds)
    # One stop handler for the whole run: its count of calls (the
    # multi-process stop protocol's clock) must not restart at a rollback.
    with _StopSignals() as stop:
      for rollback in itertools.count(1):
        try:
          states = _loop(run, states, start, stop)
          break
        except TrainingDivergedError as e:
          if rollback > config.nan_rollbacks:
            raise
          states, start = _roll_back(run, rollback, e)
  finally:
    for member in run.members:
      member.close()
  run.write_grids(states, "final.png")
  return states if config.num_seeds > 1 else states[0]


def _restore_latest(run):
  """Each seed's state at the newest checkpoint all seeds have (or the
  initial one), on the devices.

  A seed's checkpoints past that step (a crash between two seeds' saves) are
  deleted: the run replays those steps and writes them again.
  """
  steps = [set(m.checkpointer.all_steps()) for m in run.members]
  common = set.intersection(*steps)
  step = max(common) if common else None
  for member, have in zip(run.members, steps):
    for newer in sorted(s for s in have if step is None or s > step):
      logging.warning("Deleting %s/checkpoints/%d: the other seeds have no "
                      "checkpoint of that step; it is made again.",
                      member.workdir, newer)
      member.checkpointer.delete(newer)
  states = []
  for member in run.members:
    state = run.init_state(member)
    if step is not None:
      state = member.checkpointer.restore(
          step, state, member.config, data_sha256=run.data_info["sha256"])
    states.append(train_step.replicate_state(_local(state), run.devices))
  return tuple(states)


def _roll_back(run, rollback, error):
  """Back to the newest checkpoint; the diverged seed continues with noise
  stream number `rollback`, the others as they were.

  The noise key (noise and dropout) is folded with the rollback's number; the
  data order is kept. Deterministic: a rerun that diverges at the same place
  takes the same new stream.
  """
  for member in run.members:
    member.checkpointer.wait()
  states = list(_restore_latest(run))
  diverged = error.member
  noise_key = jax.random.fold_in(
      jax.random.wrap_key_data(states[diverged].noise_key), rollback)
  states[diverged] = train_step.replicate_state(
      states[diverged].replace(noise_key=jax.random.key_data(noise_key)),
      run.devices)
  step = int(states[0].step)
  for member in run.members:
    member.writer.rewind(step)
  run.members[diverged].writer.write(step, {"rollback": rollback})
  logging.warning("%s Rollback %d of at most %d (config.nan_rollbacks): "
                  "continuing from step %d with a new noise stream%s.", error,
                  rollback, run.config.nan_rollbacks, step,
                  run.members[diverged].label)
  return tuple(states), step


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


def _loop(run, states, start, stop):
  config = run.config
  step, pending = start, None
  t_log, step_log, t_start = time.perf_counter(), start, time.perf_counter()

  def check(at_step, metrics, with_states=False):
    """Each seed's scalars, after checking them (and its state) finite."""
    all_scalars = []
    for k, (member, values) in enumerate(zip(run.members,
                                             jax.device_get(metrics))):
      scalars = {name: float(v) for name, v in values.items()}
      _check_finite(at_step, scalars, states[k] if with_states else None,
                    member=k, where=member.label)
      all_scalars.append(scalars)
    return all_scalars

  def report(at_step, metrics):
    nonlocal t_log, step_log
    all_scalars = check(at_step, metrics)
    now = time.perf_counter()
    rate = (at_step - step_log) / max(now - t_log, 1e-9)
    t_log, step_log = now, at_step
    eta = time.strftime("%H:%M:%S", time.gmtime(
        (config.num_steps - at_step) / max(rate, 1e-9)))
    for member, scalars in zip(run.members, all_scalars):
      scalars["steps_per_s"] = rate
      member.writer.write(at_step, scalars)
      logging.info("step %d/%d%s  d_loss %.4f  g_loss %.4f  D(x) %.3f  "
                   "D(G(z)) %.3f  %.2f steps/s  ETA %s", at_step,
                   config.num_steps, member.label, scalars["d_loss"],
                   scalars["g_loss"], scalars["d_real"], scalars["d_fake"],
                   rate, eta)

  while step < config.num_steps:
    states, metrics = run.train_fn(states, run.data)  # states are donated
    step += config.steps_per_call
    if pending is not None:  # read the previous call's metrics only now
      report(*pending)
      pending = None
    done = step == config.num_steps
    stopping = stop.should_stop() and not done
    checkpoint = step % config.checkpoint_every == 0 or done or stopping
    if checkpoint:
      if step % config.log_every == 0:
        report(step, metrics)
      else:
        check(step, metrics)
      check(step, [{}] * len(states), with_states=True)
      for member, state in zip(run.members, states):
        member.checkpointer.save(step, state, run.meta(member))
    elif step % config.log_every == 0:
      pending = (step, metrics)
    if step % config.sample_every == 0:
      run.write_grids(states, f"step_{step:07d}.png")
    if config.eval_every and (step % config.eval_every == 0 or done):
      _evaluate(run, states, step)
    if stopping:
      raise Preempted(stop.signum, step, run.checkpoints)
  if pending is not None:
    report(*pending)
  logging.info("Finished %d steps in %.1f s", step - start,
               time.perf_counter() - t_start)
  return states


def _evaluate(run, states, step):
  """Scores each seed (its eval/ JSON, metrics and best checkpoint); a run of
  several seeds also writes the summary over seeds to its eval/."""
  results = {}
  for member, state in zip(run.members, states):
    result = run.evaluate(member, state, step)
    member.writer.write(step, {f"eval/{k}": result[k] for k in EVAL_SCALARS
                               if k in result})
    member.best.offer(step, state, run.meta(member), result["fid"])
    results[member.config.seed] = result
  if len(results) > 1:
    summary = {**seeds_lib.summarize(results), "step": step}
    if distributed.is_writer():
      metric_writers.write_json(
          metric_writers.eval_path(run.workdir, step), summary)
    logging.info("eval at step %d over %d seeds: FID %.3f +- %.3f  recall "
                 "%.3f +- %.3f (mean +- 95%% CI)", step, len(results),
                 summary["mean"]["fid"], summary["ci95"]["fid"],
                 summary["mean"]["recall"], summary["ci95"]["recall"])
