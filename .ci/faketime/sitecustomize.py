"""Loaded only by CI's calendar check (PYTHONPATH=.ci/faketime), which runs the fast tier with the wall
clock moved 400 days ahead by libfaketime, in the test process and in every Python process it starts.

libfaketime 0.9.10 (Debian 12) cannot fake Python 3.11 fully: faking the monotonic clock hangs every
condition-variable wait, so the step sets FAKETIME_DONT_FAKE_MONOTONIC=1; with that, time.sleep
(clock_nanosleep on an absolute monotonic deadline) fails with EINVAL. Waiting in select() is passed
through untouched, so sleeping waits there. Nothing else changes: the point of the step is the date.
"""

import os
import select
import time

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + seconds
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
