"""`train_and_evaluate(config, workdir)`: the whole training run.

The command line (`ganjax.train`), the tests and the benchmarks all call this.
"""

import json
import os
import time

from absl import logging
import jax

import ganjax
from ganjax import build
from ganjax import checkpointing
from ganjax import classifier as classifier_lib
from ganjax import configs
from ganjax import distributed
from ganjax import divergence
from ganjax import images as images_lib
from ganjax import input_pipeline
from ganjax import layers
from ganjax import metric_writers
from ganjax import metrics as metrics_lib
from ganjax import models
from ganjax import parallel
from ganjax import rundir
from ganjax import sampling
from ganjax import seeds as seeds_lib
from ganjax import signals
from ganjax import sweeps

# For callers of the trainer (the command line, the tests).
TrainingDivergedError = divergence.TrainingDivergedError
Preempted = signals.Preempted
load_run_config = rundir.load_run_config
restore_state = rundir.restore_state
restore_generator = rundir.restore_generator


# Errors that come from bad input (config, data, workdir, checkpoint) or a
# diverged run; the command line prints their message without a traceback.
USER_ERRORS = (ValueError, input_pipeline.DatasetError,
               checkpointing.CheckpointError, TrainingDivergedError,
               classifier_lib.ClassifierError)

# Evaluation scalars logged with the training metrics (prefixed "eval/").
EVAL_SCALARS = ("fid", "fid_logits", "kid", "classifier_score", "precision",
                "recall", "class_entropy", "classes_covered",
                "conditional_accuracy")  # the last for conditional G only


def evaluate_checkpoint(evaluator, sampler, g_vars, workdir, step, latent_dim,
                       num_samples, seed, protocol="") -> dict:
  """Scores G (checkpoint `step` of the run in `workdir`) by the protocol;
  writes workdir/eval[/protocol]/step_<step>.json (`metric_writers.eval_path`)
  and logs the headline numbers."""
  result = metrics_lib.evaluate_generator(evaluator, sampler, g_vars,
                                          latent_dim, num_samples, seed)
  result["step"] = step
  if distributed.is_writer():
    metric_writers.write_json(
        metric_writers.eval_path(workdir, step, protocol), result)
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


def _discard_evaluations_after(workdir, step):
  for path in metric_writers.discard_evaluations_after(workdir, step):
    logging.info("Deleted %s: the run continues from step %d and evaluates "
                 "that step again when it gets there.", path, step)


def _diverged_step(path):
  """The step in a dropped sweep member's diverged.json; None without it."""
  try:
    with open(path, encoding="utf-8") as f:
      return int(json.load(f)["step"])
  except FileNotFoundError:
    return None
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path} is unreadable ({e}); it records that this "
                     "sweep point diverged. Write {\"step\": N} into it to "
                     "keep the point left out, or continue the point alone "
                     "(its own --config and --workdir)") from None


class _Member:
  """One seed (of one point of a sweep) of a run: its config, run directory,
  keys and outputs. A run of one seed and no sweep has one member, the run
  itself."""

  def __init__(self, config, workdir, label, point, in_sweep=False):
    self.config, self.workdir = config, workdir
    self.label = label  # "" for a one-seed run, else " (seed <s>)" etc.
    self.point = point  # its sweeps.Point in a sweep, else None
    self.keys = build.make_keys(config.seed)
    self.fixed_z = jax.random.normal(
        self.keys["sample"], (config.num_sample_images, config.latent_dim))
    self.checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    self.writer = self.best = None  # opened at the start step
    # In a sweep, the step at which this member diverged and was dropped
    # (kept in its diverged.json, so a resumed sweep leaves it out too; the
    # point trained alone ignores it).
    self.diverged_at = (_diverged_step(self.diverged_path) if in_sweep
                        else None)

  @property
  def diverged_path(self):
    return os.path.join(self.workdir, "diverged.json")

  def open_outputs(self, start):
    if self.diverged_at is not None:  # its outputs stay as they were
      self.writer = metric_writers.NullWriter()
      return
    self.writer = (metric_writers.MetricWriter(self.workdir, start)
                   if distributed.is_writer() else metric_writers.NullWriter())
    self.best = checkpointing.BestCheckpoint(self.workdir, start)

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
    rundir.prepare_workdir(workdir, config)  # after every check of the input
    self.conv_impl = layers.resolve_impl(config.conv_impl)
    self.evaluator = None
    self._sampling_cache = {}  # see sampling_variables
    if config.eval_every:  # built now, so a missing classifier fails early
      self.evaluator = metrics_lib.Evaluator(
          config.dataset, data_dir=config.data_dir or None,
          source=config.data_source,
          tfds_data_dir=config.tfds_data_dir or None)
    self.data = build.replicate_data(config, images, labels,
                                     self.devices)
    self.num_examples = images.shape[0]
    self.sampler, _ = models.make_models(config, axis_name=None)
    self.train_fn = build.compile_train_fn(config, self.devices, seeds=True)
    # A conditional G's grid has one column per class.
    self.num_classes = self.sampler.num_classes
    self.fixed_labels = sampling.balanced_labels(
        0, config.num_sample_images, self.num_classes)
    members = sweeps.members(config, workdir)
    self.several = len(members) > 1
    # Every directory (of each point with seeds, each seed) is checked
    # before any is opened.
    self.point_dirs = {}  # of the sweep's points that hold seeds
    for member_config, member_workdir, _, point in members:
      if (point and config.num_seeds > 1
          and point.workdir not in self.point_dirs):
        self.point_dirs[point.workdir] = sweeps.point_config(
            config, point.overrides)
        rundir.prepare_workdir(point.workdir, self.point_dirs[point.workdir])
      if self.several:
        rundir.prepare_workdir(member_workdir, member_config)
    self.members = [_Member(*m, in_sweep=bool(config.sweep))
                    for m in members]
    if not self.live():
      raise ValueError(
          f"every point of the sweep in {workdir} diverged (see each "
          "point's diverged.json): nothing is left to train. Continue a "
          "point alone with its config, e.g. python -m ganjax.train "
          f"--config=... --workdir={self.members[0].workdir} "
          "--config.nan_rollbacks=N, or start a new --workdir")
    # {member index: [(step, number)]}: each rollback of a member, the step
    # it went back to and its noise stream's number.
    self.rollbacks = {}
    inner = os.path.join("p*" if config.sweep else "",
                         "seed_*" if config.num_seeds > 1 else "")
    self.checkpoints = os.path.join(workdir, inner, "checkpoints")

  def init_state(self, member):
    return build.initial_state(member.config, member.keys,
                               self.num_examples)

  def sampling_variables(self, state):
    """G's sampling variables for `state`, kept for the newest states (as
    many as the run has members): a step's grid, its evaluation and the
    final grid share one state, and an EMA G's standing statistics cost two
    passes of 4,096 samples."""
    g_fields = ("g_params", "g_batch_stats", "g_ema_params")
    g_tree = {name: getattr(state, name) for name in g_fields}
    # Keyed by the arrays themselves, which the cache holds (so no other
    # array can take their ids); the next step's state has new arrays.
    key = tuple(map(id, jax.tree.leaves(g_tree)))
    if key not in self._sampling_cache:
      if len(self._sampling_cache) >= len(self.members):
        del self._sampling_cache[next(iter(self._sampling_cache))]
      self._sampling_cache[key] = (g_tree, sampling.sampling_variables(
          self.sampler, state.replace(**_local(g_tree)),
          self.config.latent_dim))
    return self._sampling_cache[key][1]

  def evaluate(self, member, state, step):
    return evaluate_checkpoint(
        self.evaluator, self.sampler, self.sampling_variables(state),
        member.workdir, step,
        self.config.latent_dim, self.config.eval_num_samples,
        self.config.eval_seed)

  def rewind(self, step):
    """Drops the metrics, the evaluations (each training member's, and the
    summaries over seeds and points) and the best checkpoint of steps past
    `step`, which the run replays. A member left out of a sweep keeps its
    record."""
    live = [m for _, m in self.live()]
    for member in live:
      member.writer.rewind(step)
      member.best.rewind(step)
    if distributed.is_writer():
      for workdir in {self.workdir, *self.point_dirs,
                      *(m.workdir for m in live)}:
        _discard_evaluations_after(workdir, step)

  def live(self, states=None):
    """(index, member[, state]) of the members still training (in a sweep,
    those that have not diverged)."""
    return [(k, m) if states is None else (k, m, states[k])
            for k, m in enumerate(self.members) if m.diverged_at is None]

  def drop(self, error):
    """In a sweep, leaves out the member that diverged (`error`): its
    diverged.json records the step and the message; the others train on.
    Returns False (and records nothing) where it is the last one training:
    the sweep then stops as a run that diverged."""
    member = self.members[error.member]
    if [k for k, _ in self.live()] == [error.member]:
      return False
    member.diverged_at = error.step
    if distributed.is_writer():
      metric_writers.write_json(member.diverged_path,
                                {"step": error.step, "message": str(error)})
    logging.warning("%s Left out of the sweep (%s/diverged.json); the other "
                    "points continue from their newest checkpoint.", error,
                    member.workdir)
    return True

  def write_grids(self, states, name):
    if not distributed.is_writer():
      return
    for _, member, state in self.live(states):
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
  `workdir/seed_<s>` (see ganjax/seeds.py); with a `config.sweep`, every
  point's seeds, each point in `workdir/p<i>_...` (see ganjax/sweeps.py).

  Returns:
    The final TrainState (host-side copies of the arrays are not made); a
    tuple of them for a run of several seeds or points, point by point, each
    point's seeds in order.
  """
  run = _Run(config, workdir)
  try:
    states = _restore_latest(run)
    start = int(states[run.live()[0][0]].step)
    if start:
      logging.info("Resumed from %s/%d", run.checkpoints, start)
    for member in run.members:
      member.open_outputs(start)
      if run.several:
        rundir.write_manifest(member.workdir, member.config,
                              run.data_info, run.conv_impl, run.devices)
    run.rewind(start)
    for point_workdir, point_config in run.point_dirs.items():
      rundir.write_manifest(point_workdir, point_config, run.data_info,
                            run.conv_impl, run.devices)
    rundir.write_manifest(workdir, config, run.data_info, run.conv_impl,
                          run.devices)
    logging.info("Training %s from step %d to %d on %d %s device(s), "
                 "conv_impl=%s, %d seed(s)%s", config.dataset, start,
                 config.num_steps, len(run.devices), jax.default_backend(),
                 run.conv_impl, config.num_seeds,
                 f" x {len(run.members) // config.num_seeds} sweep points"
                 if config.sweep else "")
    # One stop handler for the whole run: its count of calls (the
    # multi-process stop protocol's clock) must not restart at a rollback.
    with signals.StopSignals() as stop:
      while True:
        try:
          states = _loop(run, states, start, stop)
          break
        except divergence.TrainingDivergedError as e:
          if len(run.rollbacks.get(e.member, ())) < config.nan_rollbacks:
            states, start = _roll_back(run, e)
          elif config.sweep and run.drop(e):
            states, start = _resume_without(run)
          else:
            raise
  finally:
    for member in run.members:
      member.close()
  run.write_grids(states, "final.png")
  _summarize(run)
  return states if run.several else states[0]


def _summarize(run):
  """Where a finished run's outputs are, and its best evaluation."""
  for member in run.members:
    if member.diverged_at is not None:
      logging.info("Left out%s: diverged at step %d (diverged.json); its "
                   "checkpoints hold the steps before.", member.label,
                   member.diverged_at)
      continue
    best = (f"; best FID {member.best.fid:.2f} (checkpoints_best/)"
            if member.best.fid < float("inf") else "")
    logging.info("Outputs%s in %s: checkpoints/, samples/final.png, "
                 "metrics.jsonl, tensorboard/%s%s. Sample with python -m "
                 "ganjax.sample --workdir=%s", member.label, member.workdir,
                 ", eval/" if run.config.eval_every else "", best,
                 member.workdir)


def _restore_latest(run):
  """Each seed's state at the newest checkpoint all seeds have (or the
  initial one), on the devices.

  A seed's checkpoint past that step (a crash between two seeds' saves) is
  deleted: the run replays those steps and writes it again. A member left
  out of a sweep (diverged) takes its initial state, computed and ignored.
  A member that rolled back to that step takes its rollback's noise stream
  again.
  """
  step = _newest_common_step(run)
  states = []
  for k, member in enumerate(run.members):
    state = run.init_state(member)
    if step is not None and member.diverged_at is None:
      state = member.checkpointer.restore(
          step, state, member.config, data_sha256=run.data_info["sha256"])
    back = run.rollbacks.get(k)
    if back and back[-1][0] == (step or 0):
      state = state.replace(noise_key=jax.random.key_data(jax.random.fold_in(
          jax.random.wrap_key_data(state.noise_key), back[-1][1])))
    states.append(parallel.replicate_state(_local(state), run.devices))
  return tuple(states)


def _newest_common_step(run):
  """The newest checkpoint step every training member has (None if none),
  after deleting the one newer checkpoint a crash between two members'
  saves can leave. More than that is refused: the members' checkpoints
  stop at different places (a deleted diverged.json, a copied directory),
  and going back to the common step would delete their progress."""
  steps = {k: set(m.checkpointer.all_steps()) for k, m in run.live()}
  common = set.intersection(*steps.values())
  step = max(common) if common else None
  newer = {k: sorted(s for s in have if step is None or s > step)
           for k, have in steps.items()}
  if max(len(n) for n in newer.values()) > 1:
    behind = [run.members[k].workdir for k, n in newer.items() if not n]
    raise ValueError(
        f"the checkpoints of this run's seeds and points stop at different "
        f"steps: {', '.join(behind)} has none past step {step}, but "
        + "; ".join(f"{run.members[k].workdir} has {n}"
                    for k, n in newer.items() if len(n) > 1)
        + ". Going back to the common step would delete those. If a point "
        "diverged and its diverged.json was deleted, put it back and "
        "continue that point alone (its own --config and --workdir)")
  for k, steps_past in newer.items():
    for past in steps_past:
      logging.warning("Deleting %s/checkpoints/%d: the other seeds have no "
                      "checkpoint of that step; it is made again.",
                      run.members[k].workdir, past)
      run.members[k].checkpointer.delete(past)
  return step


def _resume_without(run):
  """After a member left the sweep: every other member back to the newest
  checkpoint (the steps since are replayed exactly)."""
  for member in run.members:
    member.checkpointer.wait()
  states = _restore_latest(run)
  step = int(states[run.live()[0][0]].step)
  run.rewind(step)
  return states, step


def _roll_back(run, error):
  """Back to the newest checkpoint; the diverged seed continues with noise
  stream number n (its n-th rollback), the others as they were.

  The noise key (noise and dropout) is folded with n; the data order is
  kept. Deterministic: a rerun that diverges at the same place takes the
  same new stream. A later restore to the same checkpoint (another member's
  rollback) gives the seed that stream again.
  """
  for member in run.members:
    member.checkpointer.wait()
  diverged = error.member
  back = run.rollbacks.setdefault(diverged, [])
  rollback = len(back) + 1
  back.append((_newest_common_step(run) or 0, rollback))
  states = _restore_latest(run)
  step = int(states[run.live()[0][0]].step)
  run.rewind(step)
  run.members[diverged].writer.write(step, {"rollback": rollback})
  logging.warning("%s Rollback %d of at most %d (config.nan_rollbacks): "
                  "continuing from step %d with a new noise stream%s.", error,
                  rollback, run.config.nan_rollbacks, step,
                  run.members[diverged].label)
  return states, step


def _loop(run, states, start, stop):
  config = run.config
  step, pending = start, None
  t_log, step_log, t_start = time.perf_counter(), start, time.perf_counter()

  def check(at_step, metrics, with_states=False):
    """Each seed's scalars, after checking them (and its state) finite."""
    all_scalars = []
    for k, (member, values) in enumerate(zip(run.members,
                                             jax.device_get(metrics))):
      if member.diverged_at is not None:
        all_scalars.append(None)
        continue
      scalars = {name: float(v) for name, v in values.items()}
      divergence.check_finite(at_step, scalars,
                              states[k] if with_states else None,
                              member=k, where=member.label)
      all_scalars.append(scalars)
    return all_scalars

  def report(at_step, metrics):
    nonlocal t_log, step_log
    all_scalars = check(at_step, metrics)
    now = time.perf_counter()
    if at_step > step_log:  # the rate clock starts after the first call
      rate = (at_step - step_log) / max(now - t_log, 1e-9)
      speed = f"{rate:.2f} steps/s  ETA " + time.strftime(
          "%H:%M:%S", time.gmtime((config.num_steps - at_step) / rate))
    else:
      rate, speed = None, "first call (compiling)"
    t_log, step_log = now, at_step
    for member, scalars in zip(run.members, all_scalars):
      if scalars is None:  # left out of the sweep
        continue
      if rate is not None:
        scalars["steps_per_s"] = rate
      member.writer.write(at_step, scalars)
      ada = (f"  ADA p {scalars['augment_p']:.3f}" if "augment_p" in scalars
             else "")
      logging.info("step %d/%d%s  d_loss %.4f  g_loss %.4f  D(x) %.3f  "
                   "D(G(z)) %.3f%s  %s", at_step, config.num_steps,
                   member.label, scalars["d_loss"], scalars["g_loss"],
                   scalars["d_real"], scalars["d_fake"], ada, speed)

  previous = None  # the outputs of the call before the newest
  while step < config.num_steps:
    states, metrics = run.train_fn(states, run.data)  # states are donated
    step += config.steps_per_call
    if previous is not None:
      # At most two calls in flight: the device always has the next one
      # queued, and a stop (Ctrl-C) waits for two calls, not for however
      # far Python has run ahead of the device.
      jax.block_until_ready(previous)
    elif step == start + config.steps_per_call:
      jax.block_until_ready(metrics)  # the first call includes compiling:
      t_log, step_log = time.perf_counter(), step  # the rate starts here
    previous = metrics
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
      for _, member, state in run.live(states):
        member.checkpointer.save(step, state, run.meta(member))
    elif step % config.log_every == 0:
      pending = (step, metrics)
    if step % config.sample_every == 0:
      run.write_grids(states, f"step_{step:07d}.png")
    if config.eval_every and (step % config.eval_every == 0 or done):
      t_eval = time.perf_counter()
      _evaluate(run, states, step)
      t_log += time.perf_counter() - t_eval  # the rate is of training alone
    if stopping:
      raise signals.Preempted(stop.signum, step, run.checkpoints)
  if pending is not None:
    report(*pending)
  if step == start:
    logging.info("The run in %s is already complete at step %d "
                 "(config.num_steps); raise --config.num_steps to train on.",
                 run.workdir, step)
  else:
    seconds = time.perf_counter() - t_start
    logging.info("Finished steps %d to %d in %.1f s (%.2f steps/s, "
                 "compiling included).", start, step, seconds,
                 (step - start) / max(seconds, 1e-9))
  return states


def _evaluate(run, states, step):
  """Scores each seed (its eval/ JSON, metrics and best checkpoint); a run of
  several seeds also writes the summary over seeds to its eval/ (in a sweep,
  each point's to the point's eval/), and a sweep the summary over points
  to its own."""
  results = {}  # {point index (0 without a sweep): (point, {seed: result})}
  for member in run.members:  # a point whose seeds all diverged stays empty
    results.setdefault(member.point.index if member.point else 0,
                       (member.point, {}))
  for _, member, state in run.live(states):
    result = run.evaluate(member, state, step)
    member.writer.write(step, {f"eval/{k}": result[k] for k in EVAL_SCALARS
                               if k in result})
    member.best.offer(step, state, run.meta(member), result["fid"])
    index = member.point.index if member.point else 0
    results.setdefault(index, (member.point, {}))[1][member.config.seed] = (
        result)
  if run.config.num_seeds > 1:
    for point, by_seed in results.values():
      if not by_seed:
        continue
      summary = {**seeds_lib.summarize(by_seed), "step": step}
      _write_summary(point.workdir if point else run.workdir, step, summary)
      logging.info("eval at step %d over %d seeds%s: FID %.3f +- %.3f  "
                   "recall %.3f +- %.3f (mean +- 95%% CI)", step, len(by_seed),
                   f" of {point.name}" if point else "",
                   summary["mean"]["fid"], summary["ci95"]["fid"],
                   summary["mean"]["recall"], summary["ci95"]["recall"])
  if run.config.sweep:
    diverged = {}  # {point index: {seed: step}}
    for member in run.members:
      if member.diverged_at is not None:
        diverged.setdefault(member.point.index, {})[member.config.seed] = (
            member.diverged_at)
    summary = {**sweeps.summarize(list(results.values()), diverged),
               "step": step}
    _write_summary(run.workdir, step, summary)
    logging.info("eval at step %d over %d sweep points: best %s, FID %.3f "
                 "(mean over seeds)\n%s", step, summary["num_points"],
                 summary["best"]["name"], summary["best"]["fid"],
                 sweeps.table(summary))


def _write_summary(workdir, step, summary):
  if distributed.is_writer():
    metric_writers.write_json(metric_writers.eval_path(workdir, step),
                              summary)
