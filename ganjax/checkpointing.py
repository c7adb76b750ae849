"""Orbax checkpoints of the whole TrainState, with the config that made them.

Each checkpoint is a directory `checkpoints/<step>/` with two items: `state`
(every array of the TrainState: parameters, BatchNorm statistics, optimizer
states, step and RNG keys; the data position follows from the step) and `meta`
(JSON: the config's trajectory fields and versions). Orbax writes into a
temporary directory and renames it when complete, so a crash or a full disk
mid-save leaves the previous checkpoints as they were (tested by SIGKILL and by
a file-size limit); the partial directory is deleted at the next start.
"""

import contextlib
import os

import flax
import jax
import orbax.checkpoint as ocp

from ganjax import configs


def state_layout(state) -> list:
  """'path/to/leaf shape dtype' for every array of a state, sorted."""
  flat = jax.tree_util.tree_leaves_with_path(
      flax.serialization.to_state_dict(state))
  return sorted(f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)} "
                f"{leaf.dtype}" for path, leaf in flat)


def saved_shape(meta: dict, field: str, default=None) -> tuple:
  """The shape of the state's array `field` in a checkpoint, from its meta;
  `default` for a checkpoint older than the layout record."""
  if "state_layout" not in meta and default is not None:
    return default
  prefix = f"[{field!r}] "
  for line in meta.get("state_layout", ()):
    if line.startswith(prefix):
      return tuple(int(d) for d in
                   line[len(prefix):].rsplit(" ", 1)[0].strip("(,)").split(",")
                   if d.strip())
  raise CheckpointError(f"The checkpoint's meta records no array {field!r}; "
                        "it was not written by this version of ganjax.")


def _with_arrays(state) -> dict:
  """The state as a dict without its array-less fields (no EMA: None; no
  spectral norm: {}), which are not written: checkpoints from before such
  fields existed have the same structure."""
  return {name: value for name, value in
          flax.serialization.to_state_dict(state).items()
          if jax.tree.leaves(value)}


def _restore_target(leaf):
  """Shape, dtype and where to put a restored array. A template without
  placement (from `jax.eval_shape`) restores onto this process's first
  device: without one, Orbax would reuse the saved device layout and refuse
  a checkpoint written on another number of devices."""
  target = ocp.utils.to_shape_dtype_struct(leaf)
  if getattr(target, "sharding", None) is None:
    target = jax.ShapeDtypeStruct(target.shape, target.dtype,
                                  sharding=jax.sharding.SingleDeviceSharding(
                                      jax.local_devices()[0]))
  return target


class CheckpointError(RuntimeError):
  """A checkpoint cannot be used: corrupt, or made by another config."""


def _brief(error: Exception) -> str:
  """The first line of an Orbax/TensorStore error, without the store spec
  (tens of lines) that TensorStore appends."""
  text = str(error).split(" See full TensorStore details")[0]
  text = text.strip().splitlines()[0] if text.strip() else ""
  return f"{type(error).__name__}: {text[:300].rstrip('.')}"


class Checkpointer:
  """Saves and restores TrainStates in `directory`, keeping the newest `keep`."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        # Partial checkpoints left by a crash or a full disk are deleted at
        # start-up: they hold space and are never restored.
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True),
        item_names=("state", "meta"))
    self._writing = None  # the step of the newest save started

  @contextlib.contextmanager
  def _writes(self):
    """Turns a failed (possibly earlier, asynchronous) save into a
    CheckpointError that says what survived."""
    try:
      yield
    except Exception as e:  # orbax and tensorstore raise many types
      kept = [s for s in self.all_steps() if s != self._writing]
      raise CheckpointError(
          f"Writing checkpoint {self._writing} in {self.directory} failed "
          f"({type(e).__name__}: {e}). The disk may be full or the directory "
          f"not writable. The complete checkpoints {kept or '(none)'} are "
          "intact: free space and run the same command to resume from the "
          "newest.") from e

  def latest_step(self):
    return self._manager.latest_step()

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step: int, state, meta: dict) -> None:
    """Starts an asynchronous save; arrays are copied off the device before
    this returns, so `state` may be donated to the next step right away."""
    meta = {**meta, "state_layout": state_layout(state)}
    if jax.process_count() > 1:
      # pmap returns each process's own copies of the replicated state, which
      # orbax cannot write as one array; all processes hold the same values,
      # and all take part in the save.
      state = jax.device_get(state)
    with self._writes():
      self._manager.wait_until_finished()  # surfaces an earlier failure
      self._writing = step
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_with_arrays(state)),
          meta=ocp.args.JsonSave(meta)))

  def delete(self, step: int) -> None:
    self._manager.delete(step)

  def wait(self) -> None:
    with self._writes():
      self._manager.wait_until_finished()

  def read_meta(self, step: int) -> dict:
    path = os.path.join(self.directory, str(step))
    steps = sorted(self.all_steps())
    if step not in steps:
      raise CheckpointError(
          f"{self.directory} has no checkpoint of step {step}; its "
          f"checkpoints are of steps {steps}. Give one of those (--step), or "
          "none for the newest.")
    try:
      return self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises many types for damaged files
      raise CheckpointError(
          f"Checkpoint {path} is unreadable ({_brief(e)}). Move "
          "that directory aside to resume from the previous checkpoint, or "
          "start in a new --workdir.") from e

  def restore(self, step: int, template, config, data_sha256=None):
    """Restores checkpoint `step` into the structure of `template`.

    Args:
      step, template, config: which checkpoint, the state structure to
        restore into and the config that resumes it.
      data_sha256: the content hash of the training data that the restored
        state will continue on (None: not checked, e.g. for sampling).

    Raises:
      CheckpointError: the checkpoint was made by a config whose trajectory
        fields differ from `config`'s, or on other training data, or it is
        damaged.
    """
    path = os.path.join(self.directory, str(step))
    meta = self.read_meta(step)
    saved_data = meta.get("data_sha256")
    if data_sha256 is not None and saved_data not in (None, data_sha256):
      raise CheckpointError(
          f"Checkpoint {path} was trained on other data: its training set "
          f"hashes to {saved_data}, the data loaded now to {data_sha256}. "
          "Point config.data_dir / config.data_source back at the data it "
          "was trained on to resume, or start in a new --workdir.")
    diffs = configs.differences(
        configs.trajectory_fields(meta.get("config", {})),
        configs.trajectory_fields(config))
    if diffs:
      raise CheckpointError(
          f"Checkpoint {path} was made by an incompatible config; these "
          f"fields differ (saved -> now): {'; '.join(diffs)}. Use the saved "
          "values to resume, or a new --workdir for the new config.")
    saved_layout = meta.get("state_layout")
    if saved_layout is not None and saved_layout != state_layout(template):
      missing = sorted(set(state_layout(template)) - set(saved_layout))
      extra = sorted(set(saved_layout) - set(state_layout(template)))
      raise CheckpointError(
          f"Checkpoint {path} holds a training state of another layout "
          f"(written by ganjax {meta.get('ganjax')}); missing: {missing}, "
          f"unexpected: {extra}. Resume it with that ganjax version, or "
          "start in a new --workdir.")
    target = flax.serialization.to_state_dict(template)
    abstract = jax.tree.map(_restore_target, _with_arrays(template))
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))["state"]
    except Exception as e:  # orbax raises many types for damaged files
      raise CheckpointError(
          f"Checkpoint {path} is corrupt or incomplete, or was written by "
          f"another version of ganjax ({_brief(e)}). Move that directory "
          "aside to resume from the previous checkpoint, or start in a new "
          "--workdir.") from e
    return flax.serialization.from_state_dict(template,
                                              {**target, **restored})

  def close(self):
    try:
      self.wait()
    finally:
      self._manager.close()


class BestCheckpoint:
  """checkpoints_best/: the checkpoint with the lowest FID so far (one kept;
  after a rollback, the lowest since the step the run went back to).

  Its meta records the FID; a resumed run continues from that value. A best
  checkpoint newer than the step the run continues from (written before a
  crash, or before a rollback) is deleted: its steps are trained again, and
  the next evaluation writes the best anew.
  """

  def __init__(self, workdir, start):
    self.checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints_best"), 1)
    self.fid = float("inf")
    self.rewind(start)

  def rewind(self, step):
    """Deletes the best checkpoint if it is of a step past `step`."""
    self.checkpointer.wait()
    best = self.checkpointer.latest_step()
    if best is not None and best > step:
      self.checkpointer.delete(best)
      self.fid = float("inf")
    elif best is not None:
      self.fid = self.checkpointer.read_meta(best).get("fid", float("inf"))

  def offer(self, step, state, meta, fid):
    if fid < self.fid:
      self.fid = fid
      self.checkpointer.save(step, state, {**meta, "fid": fid})

  def close(self):
    self.checkpointer.close()
