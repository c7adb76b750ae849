"""Scalar metrics to `metrics.jsonl` and TensorBoard event files."""

import json
import os

from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends one JSON line per logged step; mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str):
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a",
                       encoding="utf-8")
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, scalars: dict) -> None:
    record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tb.add_scalar(name, float(value), int(step))

  def close(self):
    self._jsonl.close()
    self._tb.close()


def read_jsonl(path: str) -> list:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def eval_path(workdir: str, step: int) -> str:
  """Where the evaluation of checkpoint `step` is written."""
  return os.path.join(workdir, "eval", f"step_{step:07d}.json")


def write_json(path: str, record: dict) -> None:
  """Writes `record` atomically (a reader never sees half a file)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
