"""Stopping a run cleanly on SIGTERM or SIGINT (preemption, Ctrl-C), at the
same step in every process."""

import os
import signal
import threading

import jax
from jax.experimental import multihost_utils


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


class StopSignals:
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
