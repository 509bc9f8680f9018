"""hazards/stats.area_category over a found_at window: the cockpit heatmap of a period counts the hazards
found in it, each cell equal to the hazard list filtered by the same area, category and found dates."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import NOW, make_hazard
from world import World

from hazardloop.auth.roles import Role
from hazardloop.hazards import service, stats
from hazardloop.hazards.models import HazardState

DAY = dt.timedelta(days=1)
SINCE, UNTIL = NOW - 10 * DAY, NOW - 3 * DAY


@pytest.fixture
def found(db, world: World) -> None:  # noqa: ANN001
    """Hazards found before, at the start of, inside, at the end of and after [SINCE, UNTIL)."""
    for found_at, area, category, state in (
        (SINCE - dt.timedelta(seconds=1), world.area_a, "fire", HazardState.REPORTED),
        (SINCE, world.area_a, "fire", HazardState.CLOSED),
        (SINCE + DAY, world.area_a, "fire", HazardState.RECTIFYING),
        (SINCE + 2 * DAY, world.area_a, "electrical", HazardState.REPORTED),
        (SINCE + 3 * DAY, world.area_b, "fire", HazardState.REPORTED),
        (SINCE + 4 * DAY, world.area_a, None, HazardState.REPORTED),  # not yet classified: no cell
        (UNTIL, world.area_a, "fire", HazardState.REPORTED),
    ):
        hazard = make_hazard(db, state=state, area_id=area, responsible_id=None, photos=False)
        hazard.found_at, hazard.category = found_at, category
    db.commit()


def _cells(rows: list[tuple[int, str, int]]) -> dict[tuple[int, str], int]:
    return {(area, category): count for area, category, count in rows}


def test_a_window_counts_the_hazards_found_from_its_start_up_to_its_end(db, world: World, found) -> None:  # noqa: ANN001
    cells = _cells(stats.area_category(db, actor=world.admin, since=SINCE, until=UNTIL))
    assert cells == {(world.area_a, "fire"): 2, (world.area_a, "electrical"): 1, (world.area_b, "fire"): 1}


def test_without_a_window_every_classified_hazard_counts(db, world: World, found) -> None:  # noqa: ANN001
    cells = _cells(stats.area_category(db, actor=world.admin))
    assert cells == {(world.area_a, "fire"): 4, (world.area_a, "electrical"): 1, (world.area_b, "fire"): 1}


def test_one_open_end_bounds_only_that_side(db, world: World, found) -> None:  # noqa: ANN001
    assert _cells(stats.area_category(db, actor=world.admin, since=UNTIL)) == {(world.area_a, "fire"): 1}
    assert _cells(stats.area_category(db, actor=world.admin, until=SINCE)) == {(world.area_a, "fire"): 1}


def test_a_scoped_reader_counts_only_their_areas_in_the_window(db, world: World, found) -> None:  # noqa: ANN001
    officer = world.users[Role.SAFETY_OFFICER]  # granted area A only
    cells = _cells(stats.area_category(db, actor=officer, since=SINCE, until=UNTIL))
    assert cells == {(world.area_a, "fire"): 2, (world.area_a, "electrical"): 1}


def test_each_cell_of_a_window_equals_the_list_found_in_it(db, world: World, found) -> None:  # noqa: ANN001
    for area, category, count in stats.area_category(db, actor=world.admin, since=SINCE, until=UNTIL):
        f = service.HazardFilter(area_id=area, category=category, found_from=SINCE, found_to=UNTIL)
        assert service.list_for_user(db, actor=world.admin, filters=f)[1] == count
