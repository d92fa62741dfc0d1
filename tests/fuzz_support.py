"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py): the hypothesis profiles and a
watchdog that turns a hang into a failure with every thread's stack.

Profiles (HYPOTHESIS_PROFILE): "ci" (the default: few examples, the whole fuzz set in well
under a minute), "long" (RNNKIT_FUZZ_EXAMPLES examples per test, default 2000, for a local
soak run: HYPOTHESIS_PROFILE=long pytest tests/test_fuzz_*.py). Deadlines are off: this is a
shared 2-core machine, and the watchdog catches what a deadline would (a hang), not jitter."""
from __future__ import annotations

import contextlib
import faulthandler
import os
import tempfile

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=int(os.environ.get("RNNKIT_FUZZ_EXAMPLES", 30)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
settings.register_profile(
    "long", max_examples=int(os.environ.get("RNNKIT_FUZZ_EXAMPLES", 2000)), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
fuzz_settings = settings.get_profile(PROFILE)


# pytest captures file descriptor 2 while a test runs, and a process the watchdog ends never
# hands the capture back: the stacks go to this file (and the run fails with exit status 1)
WATCHDOG_LOG = os.environ.get("RNNKIT_WATCHDOG_LOG", os.path.join(tempfile.gettempdir(),
                                                                  "rnnkit-watchdog.log"))


@contextlib.contextmanager
def watchdog(seconds: float):
    """Ends the process, writing every thread's traceback to WATCHDOG_LOG, if the block runs
    longer than ``seconds``: a hang in the core is a failure, never a stuck CI job."""
    with open(WATCHDOG_LOG, "a") as log:
        faulthandler.dump_traceback_later(seconds, exit=True, file=log)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
