"""Cheap probes for Lava runs: record into a shared memory-mapped file instead of `Var.get`.

`Var.get()` moves one message per element (lava.magma.runtime.Runtime.get_var), so reading back
a spike buffer of a few 100k entries takes seconds. These processes run inside Lava's worker
processes (forked) and write straight into a `numpy.memmap` file (MAP_SHARED) that the caller
opens after `run()` returns; no data crosses Lava's channels after the run.

- `SpikeRecorder(shape, num_steps, path)`: an InPort; row `t - 1` of the file (uint8) holds what
  arrived at step `t` (connect a LIF's `s_out`: the spikes it sent at step `t`).
- `VarRecorder(var, path, first, interval, count)`: a RefPort on `var`; in the post-management
  phase of steps `first, first + interval, ...` (`count` of them) it copies `var` (int32) into
  row `k`. Reads the readout's `v` at the end of each sample's window.

Only `fixed_pt` models. Imports Lava.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

__all__ = ["SpikeRecorder", "VarRecorder", "PySpikeRecorderModel", "PyVarRecorderModel"]


def _size(shape: ty.Tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


class SpikeRecorder(AbstractProcess):
    """Write the vector received at each step into row `time_step - 1` of a uint8 memmap."""

    def __init__(self, *, shape: ty.Tuple[int, ...], num_steps: int, path: str,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(int(s) for s in shape)
        super().__init__(shape=shape, num_steps=int(num_steps), path=str(path), name=name)
        self.a_in = InPort(shape=shape)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        n = _size(proc_params["shape"])
        self._steps = proc_params["num_steps"]
        self._mm = np.memmap(proc_params["path"], dtype=np.uint8, mode="r+",
                             shape=(self._steps, n))

    def run_spk(self) -> None:
        x = self.a_in.recv()
        t = self.time_step - 1
        if t < self._steps:
            self._mm[t] = x.reshape(-1)


class VarRecorder(AbstractProcess):
    """Copy `var` (int32) into row k of a memmap at steps first + k * interval, k < count."""

    def __init__(self, *, var: Var, path: str, first: int, interval: int, count: int,
                 name: ty.Optional[str] = None) -> None:
        shape = tuple(int(s) for s in var.shape)
        super().__init__(shape=shape, path=str(path), first=int(first),
                         interval=int(interval), count=int(count), name=name)
        self.state = RefPort(shape)
        self.state.connect_var(var)


@implements(proc=VarRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyVarRecorderModel(PyLoihiProcessModel):
    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._first = proc_params["first"]
        self._interval = proc_params["interval"]
        self._count = proc_params["count"]
        self._mm = np.memmap(proc_params["path"], dtype=np.int32, mode="r+",
                             shape=(self._count, _size(proc_params["shape"])))

    def _slot(self) -> int:
        d = self.time_step - self._first
        if d < 0 or d % self._interval:
            return -1
        k = d // self._interval
        return k if k < self._count else -1

    def post_guard(self) -> bool:
        return self._slot() >= 0

    def run_post_mgmt(self) -> None:
        k = self._slot()
        self._mm[k] = np.asarray(self.state.read()).reshape(-1)
