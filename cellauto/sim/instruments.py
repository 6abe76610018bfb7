"""In-process simulated instruments that act on a :class:`SimWorld`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.instruments.base import InstrumentIdentity, require_range
from cellauto.instruments.bioreactor import Bioreactor, ProcessValues, Setpoints
from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.materials import Sample
from cellauto.sim.culture import Culture, CultureModel
from cellauto.sim.world import Container, SimWorld

__all__ = ["SimBarcodeScanner", "SimBioreactor", "SimCellCounter"]

FIRMWARE = "sim-1.0"


def _identity(vendor_model: str, serial: str) -> InstrumentIdentity:
    return InstrumentIdentity(
        vendor="cellauto-sim",
        model=vendor_model,
        serial=serial,
        firmware=FIRMWARE,
        adapter="in-process",
    )


class SimBarcodeScanner(BarcodeScanner):
    """Reads the label of a container on the line (by container id or description)."""

    def __init__(self, world: SimWorld, serial: str = "SCN-0001") -> None:
        super().__init__(_identity("SimScan 1D/2D", serial))
        self.world = world

    async def scan(self, label: str) -> Scan:
        await anyio.sleep(2.0)
        container = self.world.containers.get(label)
        if container is None:
            known = ", ".join(self.world.containers) or "none"
            raise InstrumentError(
                f"BarcodeScanner {self.identity.serial}: no label {label!r} in view; "
                f"containers on the line: {known}"
            )
        return Scan(data=container.label, label=label)


class SimCellCounter(CellCounter):
    """An image-based counter: ~90 s a sample, ~5 % RSD on concentrations."""

    def __init__(
        self,
        world: SimWorld,
        serial: str = "CC-0001",
        *,
        count_rsd: float = 0.05,
        seconds_per_sample: float = 90.0,
    ) -> None:
        super().__init__(_identity("SimCount BLU", serial))
        self.world = world
        self.count_rsd = count_rsd
        self.seconds_per_sample = seconds_per_sample
        self.samples: dict[str, Container] = {}

    def receive(self, sample: Sample, content: Container) -> None:
        """The material of a sample handed to the counter (done by the drawing instrument)."""
        self.samples[sample.sample_id] = content

    async def count(self, sample: Sample, *, operator: str = "system") -> CellCount:
        content = self.samples.pop(sample.sample_id, None) or self.world.containers.pop(
            sample.sample_id, None
        )
        if content is None:
            raise InstrumentError(
                f"CellCounter {self.identity.serial}: sample {sample.sample_id!r} is not loaded; "
                "draw it from a container on this line first"
            )
        await anyio.sleep(self.seconds_per_sample)
        rng = self.world.rng
        noise = max(0.0, rng.normal(1.0, self.count_rsd))
        total = content.total_cells_per_ml * noise
        true_viability = content.viable_cells / max(content.viable_cells + content.dead_cells, 1)
        viability = min(1.0, max(0.0, rng.normal(true_viability, 0.01)))
        return CellCount(
            sample_id=sample.sample_id,
            total_cells_per_ml=total,
            viable_cells_per_ml=total * viability,
            viability_pct=100.0 * viability,
            mean_diameter_um=float(rng.normal(9.5, 0.3)),
            operator=operator,
            counted_at_process_time_s=self.world.clock.now_s(),
            instrument_serial=self.identity.serial,
        )


class SimBioreactor(Bioreactor):
    """A rocking-bag bioreactor with a T-cell culture inside (1 L bag)."""

    MAX_VOLUME_ML = 1000.0

    def __init__(
        self,
        world: SimWorld,
        counter: SimCellCounter | None = None,
        serial: str = "BR-0001",
        model: CultureModel | None = None,
    ) -> None:
        super().__init__(_identity("SimWave 1L", serial))
        self.world = world
        self.counter = counter
        self.model = model or CultureModel()
        self.culture: Culture | None = None
        self.setpoints = Setpoints(
            temperature_c=20.0,
            ph=7.2,
            dissolved_oxygen_pct=40.0,
            rocking_rate_rpm=0.0,
            rocking_angle_deg=0.0,
            perfusion_rate_ml_per_day=0.0,
        )

    def _where(self) -> str:
        return f"Bioreactor {self.identity.serial}"

    def _culture(self) -> Culture:
        if self.culture is None:
            raise InstrumentError(f"{self._where()}: no culture; seed the bag first")
        self.culture.advance_to(self.world.now_h())
        return self.culture

    async def set_setpoints(self, setpoints: Setpoints) -> Setpoints:
        limits = {
            "temperature_c": (4.0, 40.0, "°C"),
            "ph": (6.0, 8.0, ""),
            "dissolved_oxygen_pct": (0.0, 100.0, "%"),
            "rocking_rate_rpm": (0.0, 40.0, "rpm"),
            "rocking_angle_deg": (0.0, 12.0, "°"),
            "perfusion_rate_ml_per_day": (0.0, 5000.0, "mL/day"),
        }
        changes = setpoints.model_dump(exclude_none=True)
        for field, value in changes.items():
            low, high, unit = limits[field]
            require_range(self, field, value, low=low, high=high, unit=unit)
        await anyio.sleep(1.0)
        self.setpoints = self.setpoints.model_copy(update=changes)
        return self.setpoints

    async def seed(self, source_container_id: str, volume_ml: float, medium_ml: float) -> float:
        source = self.world.container(source_container_id, where=self._where())
        require_range(self, "volume_ml", volume_ml, low=0.1, high=source.volume_ml, unit="mL")
        require_range(
            self, "medium_ml", medium_ml, low=0.0, high=self.MAX_VOLUME_ML - volume_ml, unit="mL"
        )
        if self.culture is not None:
            raise InstrumentError(f"{self._where()}: the bag is already seeded")
        await anyio.sleep(600.0)
        fraction = volume_ml / source.volume_ml
        viable, dead = source.viable_cells * fraction, source.dead_cells * fraction
        source.viable_cells -= viable
        source.dead_cells -= dead
        source.volume_ml -= volume_ml
        self.culture = Culture(viable, dead, volume_ml + medium_ml, self.world.now_h(), self.model)
        return self.culture.volume_ml

    async def feed(self, medium_ml: float) -> float:
        culture = self._culture()
        require_range(
            self,
            "medium_ml",
            medium_ml,
            low=0.1,
            high=self.MAX_VOLUME_ML - culture.volume_ml,
            unit="mL",
        )
        await anyio.sleep(300.0)
        culture.add_medium(medium_ml)
        return culture.volume_ml

    async def draw_sample(self, volume_ml: float) -> Sample:
        culture = self._culture()
        require_range(self, "volume_ml", volume_ml, low=0.1, high=5.0, unit="mL")
        await anyio.sleep(60.0)
        viable, dead = culture.remove(volume_ml)
        sample = Sample(
            sample_id=self.world.next_sample_id(self.identity.serial),
            source_container_id=self.identity.serial,
            volume_ml=volume_ml,
            drawn_at_process_time_s=self.world.clock.now_s(),
        )
        content = Container(sample.sample_id, viable, dead, volume_ml)
        if self.counter is not None:
            self.counter.receive(sample, content)
        else:
            self.world.add_container(content)
        return sample

    async def read_process_values(self) -> ProcessValues:
        rng = self.world.rng
        volume = self.culture.volume_ml if self.culture else 0.0
        sp = self.setpoints
        return ProcessValues(
            temperature_c=float(sp.temperature_c or 0.0) + float(rng.normal(0, 0.05)),
            ph=float(sp.ph or 7.2) + float(rng.normal(0, 0.01)),
            dissolved_oxygen_pct=float(sp.dissolved_oxygen_pct or 0.0) + float(rng.normal(0, 0.5)),
            culture_volume_ml=volume,
            process_time_s=self.world.clock.now_s(),
        )

    async def process_values(self, interval_s: float) -> AsyncIterator[ProcessValues]:
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            yield await self.read_process_values()
            await anyio.sleep(interval_s)
