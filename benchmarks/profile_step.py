"""Where a fused training call spends its time, from a jax.profiler trace.

  python benchmarks/profile_step.py --batch=512 --steps_per_call=10

Traces `--calls` compiled calls with `jax.profiler.trace` (the trace is kept
in --trace_dir for TensorBoard's profile plugin or Perfetto), then sums the
XLA CPU ops' time per op kind (convolution, dot, fusion, ...) and lists the
costliest ops by layer and pass. Op times are summed over the CPU threads, so they are
CPU time, not wall time. The script also prints the step's analytic FLOPs,
its wall time and the FLOP/s as a fraction of the matmul peak measured in the
same run, how much of the time 0, 1, 2, ... ops ran at once, and the best the
step could reach if everything but the convolutions and matmuls took no
time.
"""

import argparse
import collections
import contextlib
import glob
import os
import re
import statistics
import sys
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_xprof_traceme=true")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import step_time  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import build  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import flops  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import layers  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position

fashion = recipes.load_module(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
    "fashion.py"))

_HLO_OP = re.compile(r"^([a-z][a-z0-9_-]*?)(\.\d+)*$")
# Op kinds that carry the convolution and matmul FLOPs.
# (XLA CPU hands convolutions and matmuls to YNNPACK as "ynn_fusion"s.)
_FLOP_KINDS = ("convolution", "dot", "custom-call", "ynn_fusion")
_HLO_LINE = re.compile(r"^\s*%?([\w.-]+) = (\S+) .*?op_name=\"([^\"]*)\"")


def hlo_labels(hlo_text):
  """{instruction name: "shape  source op"} from the compiled HLO's
  metadata, to say which layer and pass an op belongs to."""
  labels = {}
  for line in hlo_text.splitlines():
    match = _HLO_LINE.match(line)
    if match:
      name, shape, source = match.groups()
      source = re.sub(r"/(\w+)/\1\.apply_kernel/", r"/\1/",
                      source.replace("jit(_fun)/closed_call/", ""))
      labels[name] = f"{shape.split('{')[0]}  {source[-80:]}"
  return labels


def _newest_trace(trace_dir):
  return sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"),
                          recursive=True), key=os.path.getmtime)[-1]


def op_times(trace_dir):
  """{op name: summed duration in ms} of the XLA ops in the newest trace."""
  path = _newest_trace(trace_dir)
  profile = jax.profiler.ProfileData.from_file(path)
  totals = collections.Counter()
  for plane in profile.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_XLA"):
        continue
      for event in line.events:
        if _HLO_OP.match(event.name):
          totals[event.name] += event.duration_ns / 1e6
  return totals


def threads_busy(trace_dir):
  """{number of XLA ops running at once: share of the traced time}, from
  the newest trace. XLA:CPU runs independent ops side by side on its
  threads; an op alone may still use several (YNNPACK splits its work, and
  those tasks carry no op name in the trace)."""
  path = _newest_trace(trace_dir)
  edges = []
  for plane in jax.profiler.ProfileData.from_file(path).planes:
    for line in plane.lines:
      if line.name.startswith("tf_XLA"):
        for event in line.events:
          if _HLO_OP.match(event.name):
            edges += [(event.start_ns, 1),
                      (event.start_ns + event.duration_ns, -1)]
  edges.sort()
  shares, running = collections.Counter(), 0
  for (t, step), (t_next, _) in zip(edges, edges[1:]):
    running += step
    shares[running] += t_next - t
  total = sum(shares.values()) or 1
  return {n: ns / total for n, ns in sorted(shares.items())}


def kind(op_name):
  return _HLO_OP.match(op_name).group(1)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--steps_per_call", type=int, default=10)
  parser.add_argument("--calls", type=int, default=3)
  parser.add_argument("--conv_impl", default="auto")
  parser.add_argument("--chunks", default=None,
                      help="the hybrid convolutions' chunks of the batch, "
                      "WEIGHT_GRAD:PASS ('none': whole batch); default "
                      "ganjax's own")
  parser.add_argument("--trace_dir", default="/tmp/ganjax-trace")
  parser.add_argument("--top", type=int, default=12)
  args = parser.parse_args()

  config = fashion.get_config()
  config.batch_size, config.steps_per_call = args.batch, args.steps_per_call
  config.conv_impl = args.conv_impl
  devices = jax.local_devices()[:1]
  images, _, _ = input_pipeline.load("fashion_mnist", "train")
  data = build.replicate_data(config, images, None, devices)
  state = parallel.replicate_state(build.initial_state(
      config, build.make_keys(0), len(images)), devices)
  with (layers.batch_chunks(*step_time.chunk_sizes(args.chunks))
        if args.chunks else contextlib.nullcontext()):  # read when tracing
    call = build.compile_train_fn(config, devices)
    labels = hlo_labels(call.lower(state, data).compile().as_text())
    state, metrics = call(state, data)
  jax.block_until_ready(metrics)
  walls = []
  with jax.profiler.trace(args.trace_dir):
    for _ in range(args.calls):
      t0 = time.perf_counter()
      state, metrics = call(state, data)
      jax.block_until_ready(metrics)
      walls.append(time.perf_counter() - t0)
  steps = args.calls * args.steps_per_call
  wall_ms = statistics.median(walls) * 1e3 / args.steps_per_call
  totals = op_times(args.trace_dir)
  cpu_ms = sum(totals.values()) / steps
  by_kind = collections.Counter()
  for name, ms in totals.items():
    by_kind[kind(name)] += ms / steps

  step_flops = flops.step_flops(args.batch)
  peak = step_time.matmul_peak()["jax_gflops"] * 1e9
  flop_ms = sum(ms for k, ms in by_kind.items() if k in _FLOP_KINDS)
  print(f"batch {args.batch}, {args.steps_per_call} steps per call, "
        f"{jax.devices()[0].device_kind}, {os.cpu_count()} cores, conv_impl "
        f"{config.conv_impl}; trace in {args.trace_dir}")
  print(f"wall {wall_ms:.0f} ms/step (median of {args.calls} traced calls); "
        f"XLA ops {cpu_ms:.0f} CPU-ms/step")
  print(f"{step_flops / 1e9:.1f} GFLOP/step: {step_flops / wall_ms / 1e6:.1f}"
        f" GFLOP/s = {100 * step_flops / wall_ms / 1e-3 / peak:.0f}% of the "
        f"matmul peak ({peak / 1e9:.0f} GFLOP/s)")
  print("share of the time with N XLA ops running at once: "
        + ", ".join(f"{n}: {100 * share:.0f}%"
                    for n, share in threads_busy(args.trace_dir).items()))
  print(f"\n{'op kind':<24}{'CPU-ms/step':>12}{'share':>8}")
  for name, ms in by_kind.most_common():
    if ms / cpu_ms >= 0.002:
      print(f"{name:<24}{ms:>12.1f}{100 * ms / cpu_ms:>7.1f}%")
  print(f"\nconvolutions and matmuls ({', '.join(_FLOP_KINDS)}): "
        f"{100 * flop_ms / cpu_ms:.0f}% of "
        "the op time. With everything else free the step would reach "
        f"{100 * (flop_ms / cpu_ms) ** -1 * step_flops / wall_ms / 1e-3 / peak:.0f}"
        "% of the peak.")
  # The fused steps are unrolled on CPU, so each step has its own copy of
  # every op: group the copies by output shape and source.
  by_source = collections.Counter()
  for name, ms in totals.items():
    by_source[labels.get(name) or f"({kind(name)}, no source metadata)"] += (
        ms / steps)
  print(f"\n{'CPU-ms/step':>11}  costliest ops by output shape and source")
  for label, ms in by_source.most_common(args.top):
    print(f"{ms:>11.1f}  {label}")


if __name__ == "__main__":
  main()
