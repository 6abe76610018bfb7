"""The run page over a simulated CAR-T batch's records (a culture temperature excursion,
held and restarted): its header, the timeline of its steps with checks and signatures,
the commands its state and the viewer allow, the plotted series as JSON (cut by
``after``), a step's instrument I/O in pages, and 404 for a run that is not there."""

from __future__ import annotations

import html
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cellauto.errors import RunNotFoundError
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.review.report.series import build_series
from cellauto.sim import simulate
from cellauto.sim.faults import TemperatureExcursion
from cellauto.site.accounts import bootstrap
from cellauto.site.store import open_site_store
from cellauto.web import run_view as view_module
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from cellauto.web.run_cache import RunRecordsCache
from cellauto.web.run_series import GROUPS, series_json
from cellauto.web.run_view import command_buttons, io_page, run_view
from tests.site.chain import POLICY, TERMINAL
from tests.site.conftest import ROOT_PASSWORD, Site
from tests.web.conftest import STAFF, Browser

STEPS = [
    "receive_apheresis",
    "enrich_cd4_cd8",
    "activate",
    "transduce",
    "expand",
    "harvest",
    "wash_concentrate",
    "formulate",
    "prepare_release_samples",  # CAR-T 1.3.0: the liquid handler's release samples
    "check_label",
    "freeze",
    "store",
    "test_retained_vial",  # CAR-T 1.3.0: the retained vial's post-thaw count
]


@pytest.fixture(scope="module")
def cart_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("run-view") / "cart.db"
    run = simulate(
        "protocols/car_t_autologous.py",
        seed=1,
        faults={"bioreactor": [TemperatureExcursion(at_h=72, delta_c=2.9, duration_h=3)]},
        on_hold="restart",
        db=path,
        patient="typical",
    )
    with open_site_store(path) as store:
        bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
        site = Site(store)
        for name, role in STAFF:
            site.add(name, role)
    return path, run.outcome.run_id


@pytest.fixture
def cart(cart_template: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    source, run_id = cart_template
    path = tmp_path / "cart.db"
    shutil.copyfile(source, path)
    return path, run_id


def test_the_header_and_the_timeline_come_from_the_records(cart: tuple[Path, str]) -> None:
    path, run_id = cart
    with Journal(path, create=False) as journal:
        view = run_view(journal, run_id, ("operator",))
    header = view.header
    assert (header.protocol, header.state, header.ended) == (
        "car-t-autologous",
        "Complete",
        "complete",
    )
    assert header.simulated and header.coi is not None and header.current_step is None
    assert [s.section.name for s in view.steps] == STEPS
    assert {s.section.outcome for s in view.steps} == {"completed"}
    expand = next(s for s in view.steps if s.section.name == "expand")
    assert expand.expected_h > 0
    (excursion,) = [c for c in expand.section.checks if c.verdict == "fail"]
    assert excursion.check == "culture temperature"
    assert excursion.specification and excursion.unit == "°C"
    texts = [a.text for a in expand.section.acts]
    assert any("deviation" in t.lower() for t in texts), texts
    assert any("Restart" in t for t in texts), texts
    # an ended run offers no command to anyone
    assert [c.enabled for c in view.commands] == [False] * 4


def test_commands_follow_the_state_and_the_viewer() -> None:
    def enabled(state: str, *roles: str) -> list[str]:
        return [c.name for c in command_buttons(state, False, roles) if c.enabled]

    assert enabled("Running", "operator") == ["hold"]
    assert enabled("Running", "supervisor") == ["hold", "stop", "abort"]
    assert enabled("Held", "operator") == ["restart"]
    assert enabled("Held", "supervisor") == ["restart", "stop", "abort"]
    assert enabled("Held", "qa") == []
    assert enabled("Running", "qa") == ["hold"]
    assert enabled("Stopping", "supervisor") == ["abort"]
    assert enabled("Running", "administrator", "supervisor") == []
    after_deviation = command_buttons("Held", False, ("operator",), after_deviation=True)
    assert [c.name for c in after_deviation if c.enabled] == []  # a supervisor's to restart
    assert [c.name for c in after_deviation if c.allowed] == ["restart", "stop", "abort"]
    supervisor = command_buttons("Held", False, ("supervisor",), after_deviation=True)
    assert [c.name for c in supervisor if c.enabled] == ["restart", "stop", "abort"]
    buttons = {c.name: c for c in command_buttons("Running", False, ("operator",))}
    assert buttons["restart"].why_not == "the run's state does not allow it"
    assert buttons["stop"].why_not == "your role may not"


def test_the_series_is_the_batch_records_cut_after_a_time(cart: tuple[Path, str]) -> None:
    path, run_id = cart
    with Journal(path, create=False) as journal:
        records = journal.records(run_id)
    full = series_json(records)
    assert full == {
        **build_series(records).model_dump(mode="json"),
        "groups": GROUPS,
        "until_s": records[-1].process_time_s,
        "last_seq": records[-1].seq,
    }
    assert len(full["counts_t"]) > 3 and len(full["culture_t"]) > 100 and full["freeze_t"]
    after = full["counts_t"][2]
    cut = series_json(records, after)
    for time_key, columns in GROUPS.items():
        kept = [i for i, t in enumerate(full[time_key]) if t > after]
        assert cut[time_key] == [full[time_key][i] for i in kept]
        for column in columns:
            assert cut[column] == [full[column][i] for i in kept]
    assert len(cut["counts_t"]) == len(full["counts_t"]) - 3
    # markers, specs and the freezer's profile always come whole
    for key in ("markers", "specs", "profile_t", "profile_c", "phase_change_s"):
        assert cut[key] == full[key]
    assert {m["kind"] for m in full["markers"]} >= {"deviation", "held"}
    nothing_new = series_json(records, full["until_s"])
    assert all(nothing_new[t] == [] for t in GROUPS)


def test_the_series_a_live_page_assembles_record_by_record_is_the_whole(
    cart: tuple[Path, str],
) -> None:
    path, run_id = cart
    with Journal(path, create=False) as journal:
        records = journal.records(run_id)
    full = series_json(records)
    # the page as the run was recorded: a first read, then what each later read added
    cuts = sorted({len(records) // 7 * k for k in range(1, 7)} | {len(records) - 1})
    page = series_json(records[: cuts[0] + 1])
    for before, now in pairwise(cuts):
        added = series_json(records[: now + 1], since_seq=before)
        assert added["last_seq"] == now
        for time_key, columns in GROUPS.items():
            for key in (time_key, *columns):
                page[key] = page[key] + added[key]
    for time_key, columns in GROUPS.items():
        for key in (time_key, *columns):
            assert page[key] == full[key], key
    # records share process times (a setpoint and the step's start, in virtual time): a
    # cut by time loses the point a later read brings at the time of the last one read
    setpoints = next(
        r.seq
        for r in records
        if r.kind.value == "instrument_command"
        and getattr(r.payload, "method", "") == "set_setpoints"
    )
    first = series_json(records[:setpoints])
    by_time = series_json(records[: setpoints + 1], first["until_s"])
    by_record = series_json(records[: setpoints + 1], since_seq=first["last_seq"])
    assert records[setpoints].process_time_s == first["until_s"]
    assert (by_time["setpoints_t"], by_record["setpoints_t"]) == ([], [first["until_s"]])


def test_a_steps_instrument_io_in_pages(
    cart: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, run_id = cart
    monkeypatch.setattr(view_module, "IO_PAGE", 5)
    with Journal(path, create=False) as journal:
        first = io_page(journal, run_id, "expand")
        second = io_page(journal, run_id, "expand", first.next_from or 0)
        none = io_page(journal, run_id, "no such step")
    assert len(first.lines) == 5 and first.next_from is not None
    assert first.lines[-1].seq < first.next_from == second.lines[0].seq
    assert any(line.text.startswith(("=", ">", "<")) for line in first.lines)
    assert (none.lines, none.next_from) == ([], None)


@pytest.fixture
def signed_in(cart: tuple[Path, str]) -> tuple[Browser, str]:
    path, run_id = cart
    client = TestClient(create_app(WebConfig(db=path)))
    client.__enter__()
    browser = Browser(client)
    browser.sign_in("ann")
    yield browser, run_id  # type: ignore[misc]
    client.__exit__(None, None, None)


def test_the_page_and_its_fragments(signed_in: tuple[Browser, str]) -> None:
    browser, run_id = signed_in
    page = browser.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f'data-topics="counts run:{run_id}"' in text
    assert "car-t-autologous" in text and "Complete" in text
    for step in STEPS:
        assert f'id="step-{step}"' in text
    assert "culture temperature" in text and "fail" in text
    assert 'href="/static/run.css"' in text and 'src="/static/plot.js"' in text
    assert "style=" not in text  # the CSP allows no inline style
    for link in ("report", "release"):  # the batch's review pages, one click away
        assert f'href="/runs/{run_id}/{link}"' in text
        assert browser.client.get(f"/runs/{run_id}/{link}").status_code == 200

    series = browser.client.get(f"/runs/{run_id}/series?after=0")
    assert series.status_code == 200 and series.json()["counts_t"]
    assert browser.client.get(f"/runs/{run_id}/series?after=soon").status_code == 422
    assert browser.client.get(f"/runs/{run_id}/series?since=x").status_code == 422
    last = series.json()["last_seq"]
    since = browser.client.get(f"/runs/{run_id}/series?since={last}").json()
    assert since["counts_t"] == [] and since["last_seq"] == last

    live = browser.client.get(f"/runs/{run_id}/live").json()
    assert (live["run"], live["state"]) == (run_id, "Complete")
    assert 'id="step-expand"' in live["timeline_html"]
    assert "Complete" in live["state_html"]

    background = {"x-cellauto-background": "1"}
    io = browser.client.get(f"/runs/{run_id}/io?step=expand", headers=background)
    assert io.status_code == 200 and "bioreactor" in io.text
    assert "<html" not in io.text  # a fragment for the page's script
    followed = browser.client.get(f"/runs/{run_id}/io?step=expand")  # a link, without script
    assert "<html" in followed.text and "Instrument I/O of expand" in followed.text
    assert browser.client.get(f"/runs/{run_id}/io").status_code == 422


def test_an_unknown_run_is_404(signed_in: tuple[Browser, str]) -> None:
    browser, _ = signed_in
    for path in ("/runs/nope", "/runs/nope/series", "/runs/nope/live", "/runs/nope/io?step=x"):
        assert browser.client.get(path).status_code == 404, path


def test_the_records_cache_reads_only_what_is_new(journal: Path) -> None:
    from tests.web.test_run_commands import T0, _active_run

    run_id = _active_run(journal)
    now = [0.0]
    cache = RunRecordsCache(keep_s=60, clock=lambda: now[0])
    with Journal(journal, create=False, any_thread=True) as reader:
        first = cache.records(reader, run_id)
        assert [r.seq for r in first] == [r.seq for r in reader.records(run_id)]
        with Journal(journal) as writer:
            run = writer.resume_run(run_id, lambda: T0 + 60)
            run.append(
                rec.StateChange(from_state="Running", to_state="Holding", cause="hold", step=None)
            )
        later = cache.records(reader, run_id)
        assert later[: len(first)] == first and len(later) == len(first) + 1
        assert later[-1].payload == rec.StateChange(
            from_state="Running", to_state="Holding", cause="hold", step=None
        )
        assert [r.hash for r in later] == [r.hash for r in reader.records(run_id)]
        later.clear()  # each caller's list is its own
        assert len(cache.records(reader, run_id)) == len(first) + 1
        with pytest.raises(RunNotFoundError):
            cache.records(reader, "no-such-run")
        assert len(cache) == 1  # nothing kept for a run that is not there
        now[0] = 61.0
        with pytest.raises(RunNotFoundError):
            cache.records(reader, "no-such-run")
        assert len(cache) == 0  # the run's page was left more than a minute ago


@pytest.mark.sqlite_only  # copies the journal file
def test_the_records_cache_keeps_a_bounded_number_of_runs(journal: Path) -> None:
    import shutil

    from tests.web.test_run_commands import _active_run

    run_id = _active_run(journal)
    copies = [journal]  # one run in three journals: three entries (keyed by file and run)
    for n in (2, 3):
        copies.append(journal.with_name(f"copy{n}.db"))
        shutil.copyfile(journal, copies[-1])
    now = [0.0]
    cache = RunRecordsCache(keep_s=60, clock=lambda: now[0], max_runs=2)
    readers = [Journal(path, create=False, any_thread=True) for path in copies]
    try:
        for step, reader in enumerate(readers):
            now[0] = float(step)
            cache.records(reader, run_id)
        assert len(cache) == 2  # the one asked for longest ago went first
        now[0] = 3.0
        again = cache.records(readers[0], run_id)
        assert [r.seq for r in again] == [r.seq for r in readers[0].records(run_id)]
        assert len(cache) == 2
    finally:
        for reader in readers:
            reader.close()
