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
  backend search.

  Exceptions Python can only ignore (in finalizers: Orbax's asynchronous
  reads of a damaged checkpoint, interrupted by the error that the program
  reports, print one traceback each whenever they are collected) and
  asyncio's "never retrieved" task errors go to the debug log
  (--verbosity=1), not to the terminal.
  """
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().python_handler.addFilter(
      lambda r: r.levelno >= std_logging.WARNING
      or not any(part in r.pathname for part in _QUIET_AT_INFO))
  sys.unraisablehook = lambda u: logging.debug(
      "Ignored in %r: %r", u.object, u.exc_value)
  std_logging.getLogger("asyncio").setLevel(std_logging.CRITICAL)


def fail(program: str, error) -> None:
  """Exits with status 1 after one line, `program: error: ...`."""
  print(f"{program}: error: {error}", file=sys.stderr, flush=True)
  sys.exit(1)
