"""A whole CAR-T batch across processes, its controller SIGKILLed 20 times and resumed.

``cellauto sim serve`` serves the ten instruments (OPC UA, SCPI, TCP, PyLabRobot over TCP)
in one process, CAR-T 1.3.0's liquid handler (the release samples) and thawer (the
retained vial) among them;
``cellauto run`` / ``cellauto resume`` drive the batch from others (tests/lines/drill.py).
The kills land at seeded random real-time moments; wherever they land, the batch must
complete, with no physical action done more often than in an uninterrupted batch and
none done without its intent in the journal, and the journal must verify.
"""

from __future__ import annotations

from pathlib import Path

from cellauto.records import Journal, verify_run
from tests.lines.drill import drill

# The line's time runs on while a controller is down (the culture does not wait), so the
# drill runs at two process hours per real second: 7.5 days take about 90 s, room for 20
# controllers that each live 0.2-4.5 s (a start-up takes about 1.5 s). The uninterrupted
# reference runs ten times faster.
SPEED = 7_200.0
REFERENCE_SPEED = 36_000.0
DAYS = 7
#: Actions a batch needs exactly once, whatever the crashes (the daily samples and counts
#: of days missed while a controller was down are skipped, so those may be fewer).
ONCE = {
    ("bioreactor", "seed"),
    ("bioreactor", "add_reagent"),
    ("bioreactor", "harvest"),
    ("processor", "start_program"),
    ("freezer", "load_profile"),
    ("freezer", "start"),
    ("storage", "store"),
    ("thawer", "thaw"),  # the retained QC vial, thawed once (a thaw in doubt is found done)
    # the release samples: each aliquot delivered once (sim/plr_actions.py); the QC sample
    # is drawn from the bag in three tip loads
    *(
        ("liquid_handler", f"dispense into {destination}")
        for destination in (
            "QC sample",
            "count 1",
            "count 2",
            *(f"release plate:A{n}" for n in range(1, 5)),
            "QC retain 1",
            "QC retain 2",
        )
    ),
}


def test_a_car_t_batch_killed_20_times_across_processes_completes_with_nothing_twice(
    tmp_path: Path,
) -> None:
    (tmp_path / "reference").mkdir()
    (tmp_path / "drill").mkdir()
    reference = drill(tmp_path / "reference", kills=0, speed=REFERENCE_SPEED, expansion_days=DAYS)
    assert reference.completed, "\n".join(reference.outputs)
    report = drill(
        tmp_path / "drill",
        kills=20,
        speed=SPEED,
        expansion_days=DAYS,
        reference=reference.done,
        mean_kill_after_s=2.35,
    )
    assert report.kills == 20
    assert report.completed, "\n".join(report.outputs)
    story = "\n".join(report.outputs)
    assert report.repeated_actions == [], f"{report.repeated_actions}\n{story}"
    assert report.lost_records == [], f"{report.lost_records}\n{story}"
    assert reference.done[("thawer", "thaw")] == 1
    assert reference.done[("liquid_handler", "dispense into QC sample")] == 3
    for key in ONCE:  # every action the batch needs once was done, and once only
        assert report.done[key] == reference.done[key], key
    with Journal(tmp_path / "drill" / "journal.db", create=False) as journal:
        assert verify_run(journal, report.run_id).intact
