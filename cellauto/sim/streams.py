"""Named random streams: one independent generator per model, found by its name.

The simulated instruments draw from streams spawned in the order they are created
(:meth:`~cellauto.sim.world.SimWorld.spawn_rng`). A model added later (the patient,
a cytokine lot, a thaw) must not shift those draws, nor any other model's: each
takes the stream named after it, ``SeedSequence(seed, spawn_key=(crc32(name),))``,
which depends only on the seed and the name — not on how many streams exist or the
order they were asked for.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["named_seed_sequence", "named_stream"]


def named_seed_sequence(seed: int | None, name: str) -> np.random.SeedSequence:
    """The seed sequence of the stream ``name`` of a world seeded with ``seed``.

    ``seed`` None: fresh entropy (a run that is not reproducible); the same name then
    still gives the same stream within one :class:`~cellauto.sim.world.SimWorld`,
    which passes its own entropy.
    """
    if not name:
        raise ValueError("a named random stream needs a name")
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode("utf-8")),))


def named_stream(seed: int | None, name: str) -> np.random.Generator:
    """A generator for the model ``name``: the same for the same seed and name."""
    return np.random.default_rng(named_seed_sequence(seed, name))
