"""Scalar metrics to `metrics.jsonl` and TensorBoard event files."""

import glob
import json
import os

from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends one JSON line per logged step; mirrors scalars to TensorBoard.

  Records past `start_step` (left by a run that stopped after its last
  checkpoint) are dropped first, so metrics.jsonl has each step once.
  """

  def __init__(self, workdir: str, start_step: int = 0):
    self._path = os.path.join(workdir, "metrics.jsonl")
    self._jsonl = None
    self.rewind(start_step)
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def rewind(self, step: int) -> None:
    """Drops the records past `step` (and a line torn by a crash)."""
    if self._jsonl is not None:
      self._jsonl.close()
    if os.path.exists(self._path):
      kept = [r for r in read_jsonl(self._path) if r["step"] <= step]
      _write_atomically(self._path, "".join(json.dumps(r) + "\n"
                                            for r in kept))
    self._jsonl = open(self._path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def write(self, step: int, scalars: dict) -> None:
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tb.add_scalar(name, float(value), int(step))

  def close(self):
    self._jsonl.close()
    self._tb.close()


class NullWriter:
  """The metric writer of processes other than 0 in a multi-process run."""

  def rewind(self, step: int) -> None:
    pass

  def write(self, step: int, scalars: dict) -> None:
    pass

  def close(self):
    pass


def read_jsonl(path: str) -> list:
  """The records of a metrics.jsonl; a last line torn by a crash is skipped."""
  with open(path, encoding="utf-8") as f:
    lines = [line for line in f if line.strip()]
  records = []
  for i, line in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      if i < len(lines) - 1 or line.endswith("\n"):
        raise ValueError(f"{path}, line {i + 1}, is not JSON: {line!r}. "
                         "Remove that line to continue.") from None
  return records


def eval_path(workdir: str, step: int, protocol: str = "") -> str:
  """Where the evaluation of checkpoint `step` is written: eval/ for the run's
  own protocol (config.eval_num_samples, config.eval_seed), which training,
  reports and results tables read; eval/<protocol>/ for any other
  (`ganjax.evaluate --num_samples/--seed`), so it never replaces those."""
  return os.path.join(workdir, "eval", protocol, f"step_{step:07d}.json")


def discard_evaluations_after(workdir: str, step: int) -> list:
  """Deletes the run's own evaluations (eval/step_N.json) of steps past
  `step`: a run resumed or rolled back to `step` replays those steps, and
  their evaluations belong to the abandoned steps. Returns the paths."""
  gone = []
  for path in glob.glob(os.path.join(workdir, "eval", "step_*.json")):
    name = os.path.basename(path)[len("step_"):-len(".json")]
    if name.isdigit() and int(name) > step:
      os.remove(path)
      gone.append(path)
  return sorted(gone)


def write_json(path: str, record: dict) -> None:
  """Writes `record` atomically (a reader never sees half a file)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  _write_atomically(path, json.dumps(record, indent=2, sort_keys=True))


def _write_atomically(path: str, text: str) -> None:
  """A crash leaves the old file or the new one, never a torn one."""
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
