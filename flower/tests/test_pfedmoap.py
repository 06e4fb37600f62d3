import json
from pathlib import Path

import numpy as np

from conftest import run
from fake_node import FakeNode, initial_context, train_count, upload_delta
from pfedprompt_server.strategies.pfedmoap import aggregate, download, expert_slots, nearest_experts

FIXTURE = Path(__file__).parent / "fixtures" / "pfedmoap_downloads.json"


def test_downloads_match_the_typescript_server_half():
    # Produced by src/methods/pfedmoap.ts's server half (fixtures/make_pfedmoap_fixture.mjs).
    for case in json.loads(FIXTURE.read_text()):
        state = {"global": np.array(case["initial"], dtype=np.float32)}
        slots = expert_slots(case["experts"], case["clients"])
        for rnd in case["rounds"]:
            uploads = [(u["client"], float(u["samples"]) if case["weighted"] else 1.0, np.array(u["context"], dtype=np.float32)) for u in rnd["uploads"]]
            state = aggregate(state, uploads)
            for client, expected in rnd["downloads"].items():
                got = download(state, int(client), slots)
                assert sorted(got) == sorted(expected)
                for name, values in expected.items():
                    assert got[name].dtype == np.float32
                    np.testing.assert_array_equal(got[name], np.array(values, dtype=np.float32), err_msg=f"client {client}, {name}")  # bit for bit


def test_nearest_experts_by_hand():
    points = [[0, 0], [3, 0], [0, 1], [-1, 0], [10, 10]]
    state = {"global": np.zeros(2, dtype=np.float32), **{f"prompt/{c}": np.array(p, dtype=np.float32) for c, p in enumerate(points)}}
    assert nearest_experts(state, 0, 2) == [2, 3]  # both at distance 1: the lower id first
    assert nearest_experts(state, 0, 9) == [2, 3, 1, 4]
    assert all(c not in nearest_experts(state, c, 9) for c in range(5))  # never a client's own prompt
    del state["prompt/4"]
    assert nearest_experts(state, 4, 2) == []  # nothing stored for the client: its first round has no experts
    assert expert_slots(10, 5) == 4 and expert_slots(3, 5) == 2


def sent(grid, kind, server_round):
    return {m.metadata.dst_node_id - 100: {k: v.numpy() for k, v in m.content["arrays"].items()} for m in grid.sent
            if m.content["config"]["pfedprompt"] == kind and m.content["config"]["server-round"] == server_round}


def test_each_node_gets_its_own_experts_from_the_stored_prompts():
    participants = [[0, 1, 2], [0, 2], [0, 1, 2]]
    nodes = [FakeNode(c, 3, participants=participants) for c in range(3)]
    result, grid = run("pfedmoap", nodes, rounds=3)
    init = initial_context(1)
    first = sent(grid, "fit", 1)
    assert sorted(first) == [0, 1, 2]
    for arrays in first.values():
        np.testing.assert_array_equal(arrays["global"], init)
        assert arrays["expertCount"].tolist() == [0.0] and arrays["experts"].shape == (2 * 8,)
    p1 = {c: (init + upload_delta(c)).astype(np.float32) for c in range(3)}  # the fake node trains "global" + delta
    second = sent(grid, "fit", 2)
    assert sorted(second) == [0, 2]
    weights = [train_count(c) for c in range(3)]
    expected_global = (sum(w * p1[c].astype(np.float64) for c, w in enumerate(weights)) / sum(weights)).astype(np.float32)
    np.testing.assert_allclose(second[0]["global"], expected_global, rtol=1e-6)
    # ‖P_i − P_j‖ grows with |i − j|: client 0's nearest is 1, then 2; client 2's is 1, then 0.
    np.testing.assert_array_equal(second[0]["experts"], np.concatenate([p1[1], p1[2]]))
    np.testing.assert_array_equal(second[2]["experts"], np.concatenate([p1[1], p1[0]]))
    # Round 3: client 1 did not upload in round 2, so its stored prompt is still the round-1 one.
    third = sent(grid, "fit", 3)
    p2 = {c: (second[c]["global"] + upload_delta(c)).astype(np.float32) for c in (0, 2)}
    np.testing.assert_array_equal(third[1]["experts"][8:], p2[0] if np.linalg.norm(p1[1] - p2[0]) > np.linalg.norm(p1[1] - p2[2]) else p2[2])
    assert all(third[c]["expertCount"].tolist() == [2.0] for c in range(3))
    # Only the prompt comes back: bytes up are one context per participant.
    assert result["rounds"][1]["bytesUp"] == 2 * 8 * 4
    assert result["rounds"][1]["bytesDown"] == 2 * (8 + 16 + 1) * 4
