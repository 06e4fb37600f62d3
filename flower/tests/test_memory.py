import math

from conftest import run
from fake_node import FakeNode, accuracy_after
from pfedprompt_server.memory import select_memory

GRID = [{"alpha": 0.5, "beta": 1}, {"alpha": 1, "beta": 1}, {"alpha": 2, "beta": 1}]
BASE = {"alpha": 1, "beta": 5.5}


def test_first_best_is_kept():
    chosen = select_memory(BASE, GRID, [[0.5, 0.9, 0.9], [0.5, 0.7, 0.7]])
    assert chosen["chosen"] == {"alpha": 1, "beta": 1}
    assert [c["valAccuracy"] for c in chosen["candidates"]] == [0.5, 0.8, 0.8]
    assert "first best kept" in chosen["how"]


def test_clients_without_validation_images_do_not_vote_and_nan_is_left_out():
    chosen = select_memory(BASE, GRID, [None, [math.nan, 0.2, 0.3], [0.9, 0.4, 0.3]])
    assert [c["valAccuracy"] for c in chosen["candidates"]] == [0.9, 0.30000000000000004, 0.3]
    assert chosen["chosen"] == {"alpha": 0.5, "beta": 1}


def test_a_nan_candidate_never_wins():
    chosen = select_memory(BASE, GRID, [[math.nan, 0.2, 0.3]])
    assert math.isnan(chosen["candidates"][0]["valAccuracy"])
    assert chosen["chosen"] == {"alpha": 2, "beta": 1}


def test_no_validation_images_anywhere_keeps_the_configured_memory():
    chosen = select_memory(BASE, GRID, [None, None])
    assert chosen["chosen"] == {"alpha": 1, "beta": 5.5}
    assert chosen["how"].startswith("no client has validation images")


def test_cell_selects_on_validation_then_tests_with_the_choice():
    nodes = [FakeNode(c, 3, no_val=(c == 0)) for c in range(3)]
    result, grid = run("pfedprompt", nodes, rounds=1)
    selection = result["config"]["memorySelection"]
    assert selection["chosen"] == {"alpha": 0.5, "beta": 5.5}  # second of four, tied with the third: first kept
    assert selection["candidates"][1]["valAccuracy"] == (0.801 + 0.802) / 2  # client 0 has no validation images
    final = [m for m in grid.sent if m.content["config"].get("split") == "test" and m.content["config"]["server-round"] == 2]
    assert {m.content["config"]["memory-choice"] for m in final} == {'{"alpha": 0.5, "beta": 5.5}'}
    assert [c["accuracy"] for c in result["clients"]] == [accuracy_after(c, 2, True) for c in range(3)]


FINE_TUNES = [{"candidate": 0, "shape": 0, "lrScale": 0.1}, {"candidate": 1, "shape": 1, "lrScale": 0.1}]


def test_a_methods_own_candidates_are_chosen_whole():
    chosen = select_memory(BASE, FINE_TUNES, [[0.5, 0.75], [0.7, 0.75]])
    assert chosen["chosen"] == {"candidate": 1, "shape": 1, "lrScale": 0.1}
    assert [c["valAccuracy"] for c in chosen["candidates"]] == [0.6, 0.75]


def test_own_candidates_without_validation_images_fall_back_to_the_methods_first():
    chosen = select_memory(BASE, FINE_TUNES, [None])
    assert chosen["chosen"] == {}
