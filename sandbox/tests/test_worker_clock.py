"""The export worker's waits on a busy machine: the clock may jump past a wait's end at any read."""

from __future__ import annotations

import typing as t

from conftest import make_config

from pardot_export_sandbox import Sandbox, server


class JumpingClock:
    """``time`` for the sandbox's server module: ``monotonic`` answers ``readings`` in turn, ``sleep`` as time's."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = iter(readings)
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return next(self.readings)

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            msg = "sleep length must be non-negative"  # what time.sleep raises
            raise ValueError(msg)
        self.slept.append(seconds)


def test_a_wait_whose_end_passes_between_two_clock_reads_ends_quietly(monkeypatch: t.Any) -> None:
    """The clock reads 0.25 (time is left), then 0.55 (past the end of a 0.5 s wait): the wait ends, no error."""
    state = Sandbox(make_config()).state
    clock = JumpingClock([0.0, 0.25, 0.55, 0.6, 0.65])
    monkeypatch.setattr(server, "time", clock)
    try:
        state._sleep(0.5)
    finally:
        state.close()
    assert clock.slept == [0.05]  # one step while time was left, none after the end
