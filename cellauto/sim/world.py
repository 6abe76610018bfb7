"""The simulated world: containers, samples, one clock and one random generator.

Simulated instruments act on this shared material state, so the sample a
bioreactor draws is the sample a counter counts. One seeded numpy generator per
instrument (spawned from the world's seed) drives all noise: the same seed gives
the same run, whatever order concurrent instruments are used in. Models that are not
instruments (the patient, ...) draw from named streams (:meth:`SimWorld.stream`).
"""

from __future__ import annotations

import numpy as np

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.identity.containers import ContainerIdentity
from cellauto.instruments.materials import Sample
from cellauto.sim.label_printer import SimLabelPrinter, decode_label
from cellauto.sim.material import Container
from cellauto.sim.patients import PatientProfile
from cellauto.sim.streams import named_stream

__all__ = ["Container", "SimWorld"]


class SimWorld:
    """Material state and randomness shared by the simulated instruments of one line."""

    def __init__(self, clock: Clock, *, seed: int | None = None) -> None:
        self.clock = clock
        self.seed = seed
        self._seed_sequence = np.random.SeedSequence(seed)
        self.rng = self.spawn_rng()
        self.containers: dict[str, Container] = {}
        self.samples: dict[str, Container] = {}
        self._sample_counter = 0
        self.start_h = self.now_h()
        #: The batch's in-process labels, printed when the batch record was issued.
        self.identities: dict[str, ContainerIdentity] = {}
        #: Labels the line's label printer printed, by container.
        self.labels = SimLabelPrinter()
        #: What a scanner pointed at a container reads instead, from which process hour
        #: (WrongBagInView).
        self.view: dict[str, tuple[str, float]] = {}
        #: The patient whose cells the line received (set by SimLine; None: none).
        self.patient: PatientProfile | None = None

    def spawn_rng(self) -> np.random.Generator:
        """An independent generator for one instrument (deterministic given the seed)."""
        return np.random.default_rng(self._seed_sequence.spawn(1)[0])

    def stream(self, name: str) -> np.random.Generator:
        """A new generator on the stream named ``name`` (:mod:`cellauto.sim.streams`):
        it depends on the world's seed and the name only, so adding a model or an
        instrument never shifts another's draws. Each call starts the stream afresh."""
        entropy = self._seed_sequence.entropy
        assert entropy is None or isinstance(entropy, int)
        return named_stream(entropy, name)

    def now_h(self) -> float:
        """Process hours on the loop clock."""
        return self.clock.monotonic() / 3600.0

    def elapsed_h(self) -> float:
        """Process hours since the world started (the time base of faults)."""
        return self.now_h() - self.start_h

    def add_container(self, container: Container) -> Container:
        if container.container_id in self.containers:
            raise InstrumentError(f"simulated line: container {container.container_id!r} exists")
        self.containers[container.container_id] = container
        return container

    def container(self, container_id: str, *, where: str) -> Container:
        try:
            return self.containers[container_id]
        except KeyError:
            known = ", ".join(self.containers) or "none"
            raise InstrumentError(
                f"{where}: no container {container_id!r} on the line; known: {known}"
            ) from None

    def draw_sample(self, source: Container, volume_ml: float, *, prefix: str) -> Sample:
        """Take a sample from ``source`` into a tube the analysers can find by its id."""
        self._sample_counter += 1
        sample_id = f"{prefix}-S{self._sample_counter:04d}"
        self.samples[sample_id] = source.take(volume_ml, sample_id)
        return Sample(
            sample_id=sample_id,
            source_container_id=source.container_id,
            volume_ml=volume_ml,
            drawn_at_process_time_s=self.clock.now_s(),
        )

    def sample(self, sample: Sample, *, where: str) -> Container:
        """The drawn sample, or the tube a liquid handler filled (a container id): whole."""
        try:
            return self.samples.get(sample.sample_id) or self.containers[sample.sample_id]
        except KeyError:
            raise InstrumentError(
                f"{where}: sample {sample.sample_id!r} is not on the line; "
                "draw it from a container first"
            ) from None

    def in_view(self, container_id: str) -> str:
        """The container a scanner pointed at ``container_id`` sees (another, by a fault)."""
        shows, from_h = self.view.get(container_id, (container_id, 0.0))
        return shows if self.elapsed_h() >= from_h else container_id

    def barcodes(self, container_id: str) -> tuple[tuple[str, str], ...]:
        """``(symbology, data)`` of every barcode a scanner reads on ``container_id``: its
        printed label, the labels it arrived with, or its in-process label; the container
        beside it if a fault puts that one in view. Empty: nothing readable."""
        key = self.in_view(container_id)
        if self.labels.has_label(key):
            return decode_label(self.labels.label_of(key).pixels)
        container = self.containers.get(key)
        if container is not None and container.barcodes:
            return tuple(("code128", data) for data in container.barcodes)
        identity = self.identities.get(key)
        if identity is not None:
            return (("code128", identity.din_data()), ("code128", identity.product_data()))
        return ()

    def scan_label(self, container_id: str) -> str:
        """What a person's hand scanner enters at a hand-off: the DIN and product code
        barcodes of the container, concatenated (ISBT 128 concatenation)."""
        found = [data for _, data in self.barcodes(container_id)]
        din = next((d for d in found if d.startswith("=")), "")
        product = next((d for d in found if d.startswith("<")), "")
        return din + product
