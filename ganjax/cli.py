"""What the command-line programs share: quiet logs and one-line errors."""

import logging as std_logging
import sys

from absl import logging

# Loggers whose INFO lines say nothing a user acts on: Orbax's per-save
# bookkeeping, and JAX's search for accelerators ("Unable to initialize
# backend 'tpu'") on a machine without them.
_QUIET_AT_INFO = ("/orbax/", "/jax/_src/xla_bridge.py")


def quiet_logs():
  """INFO for ganjax; warnings and errors only from Orbax and JAX's
  backend search."""
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().python_handler.addFilter(
      lambda r: r.levelno >= std_logging.WARNING
      or not any(part in r.pathname for part in _QUIET_AT_INFO))


def fail(program: str, error) -> None:
  """Exits with status 1 after one line, `program: error: ...`.

  Background work interrupted by the error (Orbax's asynchronous reads of a
  damaged checkpoint, for one) would otherwise print its own tracebacks
  after this line, at shutdown; they say nothing the line does not.
  """
  sys.unraisablehook = lambda unraisable: None
  std_logging.getLogger("asyncio").setLevel(std_logging.CRITICAL)
  print(f"{program}: error: {error}", file=sys.stderr, flush=True)
  sys.exit(1)
