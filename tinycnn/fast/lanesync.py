"""Where lanes meet inside a pass: the ops that mix samples (batch norm's statistics, dropout's mask)
exchange one value per lane and go on with all of them.

    values = sync.gather(lane, value)     # every lane's value, in lane order, once all have arrived

Every lane of a call passes the same gathers in the same order (the ops run in graph order in each
lane), so a gather is a barrier: ``threading.Barrier`` twice, once so that all values are in, once so
that no lane overwrites its slot for the next gather before all have read this one. When a lane
fails, ``abort()`` breaks the barrier so that the others stop waiting (they raise
``threading.BrokenBarrierError``, and the caller reports the first real error); ``reset()`` makes it
usable again.
"""
from __future__ import annotations

import threading


class LaneSync:
    def __init__(self, lanes: int):
        self.lanes = lanes
        self.barrier = threading.Barrier(lanes)
        self.slots: list = [None] * lanes

    def gather(self, lane: int, value) -> list:
        self.slots[lane] = value
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()
        return values

    def abort(self) -> None:
        self.barrier.abort()

    def reset(self) -> None:
        self.barrier.reset()
        self.slots = [None] * self.lanes
