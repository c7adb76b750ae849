"""Step-time microbenchmark of the GAN training step.

Times the compiled step after compilation and warm-up: `--repeats` timed calls
of `steps_per_call` fused steps, each ended with `jax.block_until_ready`; with
`--rounds=R`, all configurations of one batch size (ganjax's and the
references') take R such turns in rotation. Reports the median (and min/max)
ms per step, images/s, the analytic FLOPs of a step (`ganjax.flops`) and the
achieved FLOP/s as a fraction of this machine's matmul peak in the row's
dtype, measured in the same run. Optional side-by-side rows for the reference
Keras recipe and PyTorch (eager, and G and D `torch.compile`d) run when those
packages are installed (`pip install -e .[bench]`), on CPU or
`--torch_device=cuda`.

  python benchmarks/step_time.py                       # the full table
  python benchmarks/step_time.py --batch_sizes=128 --steps_per_call=1,10 \
      --dtypes=float32 --impls=matmul,xla --compare=keras,torch
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from ganjax import build  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import flops  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import layers  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import sweeps  # pylint: disable=g-import-not-at-top,wrong-import-position

fashion = recipes.load_module(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
    "fashion.py"))


def ints(text):
  return [int(x) for x in text.split(",") if x]


def strs(text):
  return [x for x in text.split(",") if x]


def chunk_sizes(text):
  """'32:256' -> (32, 256); 'none' stands for None (the whole batch)."""
  try:
    weight_grad, passes = (None if part == "none" else int(part)
                           for part in text.split(":"))
    return weight_grad, passes
  except ValueError:
    raise SystemExit(f"--chunks={text}: expected WEIGHT_GRAD:PASS, each an "
                     "integer or 'none', e.g. 32:256") from None


def matmul_peak(n=4096, repeats=5, dtypes=("float32",)):
  """Median GFLOP/s of an n x n matmul: float32 through jax and numpy, and
  through jax in each other of `dtypes` (the peak its rows are held to)."""
  work = 2 * n ** 3
  out = {}
  for dtype in dict.fromkeys(("float32", *dtypes)):
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    dot = jax.jit(jnp.dot)
    samples = time_calls(lambda: dot(a, a).block_until_ready(), 1, repeats)
    key = "jax_gflops" if dtype == "float32" else f"jax_gflops_{dtype}"
    out[key] = work / (statistics.median(samples) / 1e3) / 1e9
  a_np = np.asarray(jax.random.normal(jax.random.key(0), (n, n)))
  samples = time_calls(lambda: a_np @ a_np, 1, repeats)
  out["numpy_gflops"] = work / (statistics.median(samples) / 1e3) / 1e9
  return out


def time_calls(call, steps_per_call, repeats, warmup=1):
  """Runs `call` `warmup` times, then `repeats` timed times; ms per step."""
  for _ in range(warmup):
    call()
  samples = []
  for _ in range(repeats):
    t = time.perf_counter()
    call()
    samples.append((time.perf_counter() - t) * 1e3 / steps_per_call)
  return samples


def training_call(config, images, devices, labels=None, seeds=False):
  """A function of no arguments that runs one compiled call of `config`'s
  fused training steps on `devices` and waits for it; the state (with
  `seeds`, one per seed of every point of `config.sweep`) carries over
  between calls."""
  members = ([m[0] for m in sweeps.members(config, "")] if seeds
             else [config])
  states = tuple(parallel.replicate_state(build.initial_state(
      member, build.make_keys(member.seed), images.shape[0]), devices)
                 for member in members)
  train_fn = build.compile_train_fn(config, devices, seeds=seeds)
  data = build.replicate_data(config, images, labels, devices)
  holder = {"state": states if seeds else states[0]}

  def call():
    holder["state"], metrics = train_fn(holder["state"], data)
    jax.block_until_ready(metrics)
  return call


def ganjax_call(images, batch, steps_per_call, dtype, impl, num_devices,
                scan_unroll=0):
  """({"impl": ..., "compile_s": ...}, call) of ganjax's fused steps, compiled
  and run once (the compile) and once more (the warm-up)."""
  config = fashion.get_config()
  config.update(batch_size=batch, steps_per_call=steps_per_call,
                compute_dtype=dtype, conv_impl=impl, scan_unroll=scan_unroll)
  call = training_call(config, images, jax.local_devices()[:num_devices])
  t = time.perf_counter()
  call()
  compile_s = time.perf_counter() - t
  call()
  return {"impl": f"ganjax-{layers.resolve_impl(impl)}",
          "compile_s": compile_s,
          "scan_unroll": parallel.resolve_unroll(scan_unroll,
                                                   steps_per_call)}, call


def make_row(base, batch, steps_per_call, dtype, devices, samples, peak):
  median = statistics.median(samples)
  step_flops = flops.step_flops(batch)
  achieved = step_flops / (median / 1e3)
  peak_gflops = peak.get(f"jax_gflops_{dtype}", peak["jax_gflops"])
  return {**base, "batch": batch, "steps_per_call": steps_per_call,
          "dtype": dtype, "devices": devices,
          "ms_per_step": median, "ms_per_step_min": min(samples),
          "ms_per_step_max": max(samples), "repeats": len(samples),
          "images_per_s": batch / (median / 1e3),
          "gflop_per_step": step_flops / 1e9,
          "achieved_gflops": achieved / 1e9,
          "fraction_of_peak": achieved / (peak_gflops * 1e9)}


def print_header():
  header = (f"{'impl':<24}{'batch':>6}{'fused':>6}{'dtype':>10}{'dev':>4}"
            f"{'ms/step':>10}{'min':>9}{'max':>9}{'img/s':>9}{'GFLOP/s':>9}"
            f"{'%peak':>7}")
  print(header)
  print("-" * len(header))


def print_rows(rows):
  for r in rows:
    print(f"{r['impl']:<24}{r['batch']:>6}{r['steps_per_call']:>6}"
          f"{r['dtype']:>10}{r['devices']:>4}{r['ms_per_step']:>10.1f}"
          f"{r['ms_per_step_min']:>9.1f}{r['ms_per_step_max']:>9.1f}"
          f"{r['images_per_s']:>9.0f}{r['achieved_gflops']:>9.1f}"
          f"{100 * r['fraction_of_peak']:>6.0f}%")


def speedups(rows) -> dict:
  """{(batch, dtype): {other impl: ganjax's speed-up over it}} from ganjax's
  fastest row at that batch and dtype, with "faster PyTorch" the speed-up
  over the faster of PyTorch eager and compiled."""
  best, out = {}, {}
  for r in rows:
    key = (r["batch"], r["dtype"])
    if r["impl"].startswith("ganjax") and (
        key not in best or r["ms_per_step"] < best[key]["ms_per_step"]):
      best[key] = r
  for r in rows:
    key = (r["batch"], r["dtype"])
    if r["impl"].startswith("ganjax") or key not in best:
      continue
    ratio = r["ms_per_step"] / best[key]["ms_per_step"]
    ratios = out.setdefault(key, {})  # over each impl's fastest row
    ratios[r["impl"]] = min(ratios.get(r["impl"], ratio), ratio)
    if r["impl"].startswith("torch"):
      torch = out[key].get("faster PyTorch", ratio)
      out[key]["faster PyTorch"] = min(torch, ratio)
  return dict(sorted(out.items()))


def batch_rows(args, images, batch, chunking, peak, missing) -> list:
  """The rows of one batch size. Every configuration (ganjax's and the
  references') is prepared, then all are timed in turn, `args.rounds`
  times: a drift in the machine's speed reaches them all alike. A reference
  that fails is left out with a message; `missing` collects the reference
  packages found not installed."""
  from benchmarks import references  # pylint: disable=g-import-not-at-top
  references.new_batch_size()
  entries = []  # (row fields, call, steps per call, is a reference)
  for num_devices in args.devices or [jax.local_device_count()]:
    for impl in args.impls:
      for dtype in args.dtypes:
        for spc in args.steps_per_call:
          calls = spc * args.repeats * args.rounds
          if calls > args.max_steps_per_config and spc > 1:
            print(f"[ganjax {dtype} batch {batch}] {spc} fused steps skipped: "
                  f"{calls} steps > --max_steps_per_config", flush=True)
            continue
          variants = [None]
          if layers.resolve_impl(impl) == "hybrid":
            variants += args.chunks
          for chunks in variants:
            with (layers.batch_chunks(*chunking[chunks]) if chunks
                  else contextlib.nullcontext()):
              base, call = ganjax_call(images, batch, spc, dtype, impl,
                                       num_devices, args.scan_unroll)
            if chunks:  # not "ganjax-...": speedups() compares against it
              base["impl"] = f"hybrid-chunks-{chunks}"
            entries.append(((base, dtype, num_devices), call, spc, False))
  for name in args.compare:
    for dtype in args.compare_dtypes:
      if name in missing or (name == "keras" and dtype != "float32"):
        continue
      try:
        result = references.RUNNERS[name](images, batch,
                                          device=args.torch_device,
                                          dtype=dtype)
      except Exception as e:  # pylint: disable=broad-exception-caught
        _skipped(name, dtype, batch, e)
        continue
      if result is None:
        print(f"[{name}] not installed; skipped (pip install -e .[bench])")
        missing.add(name)
        continue
      base, step = result
      entries.append(((base, dtype, 1), step, 1, True))
  samples = {i: [] for i in range(len(entries))}
  for _ in range(args.rounds):
    for i, ((base, dtype, _), call, spc, reference) in enumerate(entries):
      if i not in samples:  # a reference that failed in an earlier round
        continue
      try:
        samples[i] += time_calls(call, spc, args.repeats, warmup=0)
      except Exception as e:  # pylint: disable=broad-exception-caught
        if not reference:
          raise
        _skipped(base["impl"], dtype, batch, e)
        del samples[i]
  rows = [make_row(base, batch, spc, dtype, devices, samples[i], peak)
          for i, ((base, dtype, devices), _, spc, _) in enumerate(entries)
          if i in samples]
  print_rows(rows)
  sys.stdout.flush()
  return rows


def _skipped(name, dtype, batch, error):
  # One failing comparison (out of memory, no compiler) must not lose the
  # other rows.
  print(f"[{name} {dtype} batch {batch}] failed, skipped: "
        f"{type(error).__name__}: {error}"[:500], flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_sizes", type=ints, default=[64, 128, 256, 512])
  parser.add_argument("--steps_per_call", type=ints, default=[1, 10, 50])
  parser.add_argument("--dtypes", type=strs, default=["float32", "bfloat16"])
  parser.add_argument("--impls", type=strs, default=["auto"])
  parser.add_argument("--devices", type=ints, default=None,
                      help="device counts; default all local devices")
  parser.add_argument("--scan_unroll", type=int, default=0,
                      help="lax.scan unroll factor of the fused steps; 0 = "
                      "ganjax's default (full on CPU, none elsewhere)")
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed calls per configuration and round")
  parser.add_argument("--rounds", type=int, default=1,
                      help="times every configuration of a batch size is "
                      "timed, in turn with the others")
  parser.add_argument("--max_steps_per_config", type=int, default=200,
                      help="skip fusing more steps than this in one call "
                      "times repeats times rounds (keeps the CPU table "
                      "finite)")
  parser.add_argument("--compare", type=strs,
                      default=["keras", "torch", "torch_compile"],
                      help="reference implementations to time beside ganjax")
  parser.add_argument("--compare_dtypes", type=strs, default=["float32"],
                      help="their dtypes (PyTorch: bfloat16 by autocast; "
                      "Keras: float32 only)")
  parser.add_argument("--peak_n", type=int, default=4096,
                      help="size of the matmul that measures the peak")
  parser.add_argument("--torch_device", default="cpu",
                      help="PyTorch's device, e.g. cuda")
  parser.add_argument("--chunks", type=strs, default=[],
                      help="also time the hybrid convolutions with these "
                      "chunk sizes, WEIGHT_GRAD:PASS each ('none': the whole "
                      "batch), e.g. 32:256,none:none (rows 'hybrid-chunks-"
                      "W:P'); ganjax's own are layers.WEIGHT_GRAD_CHUNK and "
                      "PASS_CHUNK")
  parser.add_argument("--data_dir", default=os.environ.get("GANJAX_IDX_DIR"),
                      help="Fashion-MNIST IDX directory; default Debian's")
  parser.add_argument("--out", default=None, help="also write the rows as "
                      "JSON here (the committed results are "
                      "benchmarks/results/step_time_<backend>.json)")
  args = parser.parse_args()
  chunking = {text: chunk_sizes(text) for text in args.chunks}
  from benchmarks import references  # pylint: disable=g-import-not-at-top
  unknown = sorted(set(args.compare) - set(references.RUNNERS))
  if unknown:
    raise SystemExit(f"--compare={','.join(unknown)}: valid names are "
                     f"{sorted(references.RUNNERS)}")

  images = input_pipeline.load("fashion_mnist", "train",
                               data_dir=args.data_dir)[0]
  peak = matmul_peak(args.peak_n, dtypes=args.dtypes + args.compare_dtypes)
  backend = jax.default_backend()
  others = "".join(f", {key.removeprefix('jax_gflops_')} {value:.1f} (jax)"
                   for key, value in peak.items()
                   if key.startswith("jax_gflops_"))
  print(f"backend {backend}, {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}; matmul peak GFLOP/s: float32 "
        f"{peak['jax_gflops']:.1f} (jax), {peak['numpy_gflops']:.1f} "
        f"(numpy){others}; one step = "
        f"{flops.step_flops_per_image() / 1e6:.1f} MFLOP per image",
        flush=True)
  print_header()
  rows, missing = [], set()
  for batch in args.batch_sizes:
    rows += batch_rows(args, images, batch, chunking, peak, missing)
  print()
  for (batch, dtype), ratios in speedups(rows).items():
    print(f"batch {batch} {dtype}: ganjax's speed-up over " + ", ".join(
        f"{impl} {ratio:.2f}x" for impl, ratio in ratios.items()))
  if not args.out:
    return
  out = args.out
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump({"device_kind": jax.devices()[0].device_kind,
               "backend": backend, "jax": jax.__version__,
               "platform": platform.platform(), "cpu_count": os.cpu_count(),
               "matmul_peak": peak, "args": vars(args),
               "step_mflop_per_image": flops.step_flops_per_image() / 1e6,
               "rows": rows}, f, indent=2)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
