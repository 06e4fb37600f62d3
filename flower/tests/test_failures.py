import numpy as np
import pytest

from conftest import run
from fake_node import FakeNode, initial_context, upload_delta
from pfedprompt_server.failures import FederationError


def test_failed_and_silent_nodes_are_left_out_and_recorded():
    nodes = [FakeNode(0, 3), FakeNode(1, 3, fail={("fit", 1)}), FakeNode(2, 3, silent={("fit", 1)})]
    result, grid = run("promptfl", nodes, rounds=2)
    round2 = [m for m in grid.sent if m.content["config"]["pfedprompt"] == "fit" and m.content["config"]["server-round"] == 2]
    # Round 1's aggregate is client 0's upload alone.
    np.testing.assert_allclose(round2[0].content["arrays"]["context"].numpy(), initial_context(1) + upload_delta(0), atol=1e-7)
    failures = result["failures"]
    assert [(f["stage"], f["client"]) for f in failures] == [("round 1", 1), ("round 1", 2)]
    assert "told to fail" in failures[0]["reason"] and "no reply" in failures[1]["reason"]
    assert result["rounds"][0]["bytesUp"] == 32 and result["rounds"][0]["bytesDown"] == 3 * 32
    assert result["rounds"][0]["trainLoss"] == pytest.approx(1.0)


def test_a_wrong_upload_is_left_out():
    nodes = [FakeNode(c, 2) for c in range(2)]
    original = nodes[1].fit

    def short_upload(cell, arrays, server_round):
        content = original(cell, arrays, server_round)
        from flwr.app import Array, ArrayRecord
        content["arrays"] = ArrayRecord({"context": Array(np.zeros(3, dtype=np.float32))})
        return content

    nodes[1].fit = short_upload
    result, _ = run("promptfl", nodes, rounds=1)
    assert result["failures"][0]["client"] == 1 and "float32 [8]" in result["failures"][0]["reason"]


def test_fewer_than_min_clients_stops_the_run():
    nodes = [FakeNode(c, 3, min_clients=2, fail={("fit", 2)} if c else set()) for c in range(3)]
    with pytest.raises(FederationError, match=r"round 2: 1 of 3 clients answered, fewer than minClients \(2\)"):
        run("promptfl", nodes, rounds=3)


def test_nodes_that_disagree_stop_the_run():
    nodes = [FakeNode(0, 2), FakeNode(1, 2, min_clients=2)]
    with pytest.raises(FederationError, match="disagree on minClients"):
        run("promptfl", nodes)


def test_two_nodes_for_one_client_stop_the_run():
    with pytest.raises(FederationError, match="both hold client 0"):
        run("promptfl", [FakeNode(0, 2), FakeNode(0, 2)])


def test_a_missing_client_is_recorded_when_enough_remain():
    result, _ = run("promptfl", [FakeNode(0, 3), FakeNode(2, 3)], rounds=1)
    assert [c["id"] for c in result["clients"]] == [0, 2]
    assert ("describe", 1) in [(f["stage"], f["client"]) for f in result["failures"]]
    assert ("round 1", 1) in [(f["stage"], f["client"]) for f in result["failures"]]

