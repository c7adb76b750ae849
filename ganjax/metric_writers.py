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
