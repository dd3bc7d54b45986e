"""A dendritic delay line for Lava: `ActivationDelay` holds synaptic activations for `delay` steps.

Lava's `Conv` has no synaptic delay (only `DelayDense` / `DelaySparse` do), yet a pipelined net
needs one on every edge that skips layers (docs/SEMANTICS.md section 4). This process sits
between a synapse process's `a_out` and a neuron's `a_in`, like Loihi's dendritic delay slots:
the activation it receives at step `t` leaves it at step `t + delay`. It receives before it sends,
so it adds exactly `delay` steps and nothing else (a synapse adds 1, a LIF 0). Because an InPort
sums every OutPort connected to it, one delay line serves all groups that enter one population
with the same delay, as one delay slot of a dendrite does.

Only the `fixed_pt` model exists (int32 payload, no clipping: it moves the values it gets).
This module imports Lava; import it only where Lava is wanted (`lsnn.runtime` imports it lazily).
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

__all__ = ["ActivationDelay", "PyActivationDelayModelFixed"]


class ActivationDelay(AbstractProcess):
    """Delay an activation vector of `shape` by `delay >= 1` whole steps (a ring buffer)."""

    def __init__(self, *, shape: ty.Tuple[int, ...], delay: int,
                 name: ty.Optional[str] = None) -> None:
        delay = int(delay)
        if delay < 1:
            raise ValueError(f"ActivationDelay needs delay >= 1, got {delay}")
        shape = tuple(int(s) for s in shape)
        super().__init__(shape=shape, delay=delay, name=name)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)
        # slot (t - 1) % delay holds the activation received at step t until step t + delay
        self.buf = Var(shape=(delay,) + shape, init=np.zeros((delay,) + shape, dtype=np.int32))


@implements(proc=ActivationDelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyActivationDelayModelFixed(PyLoihiProcessModel):
    """Receive, swap with the slot written `delay` steps ago, send: exactly `delay` steps."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self) -> None:
        x = self.a_in.recv()
        slot = (self.time_step - 1) % self.buf.shape[0]
        out = self.buf[slot].copy()
        self.buf[slot] = x
        self.a_out.send(out)
