import json
import math
from pathlib import Path

import numpy as np

from conftest import run
from fake_node import AMP, FakeNode, initial_context, upload_delta
from pfedprompt_server.strategies.promptamp import cloud_prompts

FIXTURE = Path(__file__).parent / "fixtures" / "promptamp_cloud.json"


def test_cloud_prompts_match_the_typescript_function():
    # Produced by src/methods/promptamp.ts's cloudPrompts (fixtures/make_promptamp_fixture.mjs).
    for case in json.loads(FIXTURE.read_text()):
        contexts = [(c["client"], np.array(c["context"], dtype=np.float32)) for c in case["contexts"]]
        out = cloud_prompts(contexts, case["alphaK"], case["sigma"])
        assert sorted(out) == sorted(int(k) for k in case["cloud"])
        for client, expected in case["cloud"].items():
            got = out[int(client)]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, np.array(expected, dtype=np.float32))  # bit for bit


def test_cloud_prompts_by_hand():
    p0 = np.array([0.0, 0.0], dtype=np.float32)
    p1 = np.array([1.0, 2.0], dtype=np.float32)
    out = cloud_prompts([(0, p0), (1, p1)], alpha_k=0.1, sigma=2.0)
    xi = 0.1 * math.exp(-5.0 / 2.0) / 2.0  # ‖p0 − p1‖² = 5, the same both ways
    np.testing.assert_allclose(out[0], [xi * 1.0, xi * 2.0], rtol=1e-6)
    np.testing.assert_allclose(out[1], [(1 - xi) * 1.0, (1 - xi) * 2.0], rtol=1e-6)
    # A lone uploader keeps its own context.
    np.testing.assert_array_equal(cloud_prompts([(3, p1)], 0.1, 1.0)[3], p1)


def cloud_sent(grid, server_round):
    return {m.metadata.dst_node_id - 100: m.content["arrays"]["cloud"].numpy() for m in grid.sent
            if m.content["config"]["pfedprompt"] == "fit" and m.content["config"]["server-round"] == server_round}


def test_each_node_gets_its_own_cloud_prompt_from_the_last_uploads():
    participants = [[0, 1, 2], [0, 2]]
    nodes = [FakeNode(c, 3, participants=participants) for c in range(3)]
    result, grid = run("promptamp", nodes, rounds=2)
    init = initial_context(1)
    first = cloud_sent(grid, 1)
    assert sorted(first) == [0, 1, 2] and all(np.array_equal(v, init) for v in first.values())  # cloud/<client> as described
    uploads = [(c, (init + upload_delta(c)).astype(np.float32)) for c in range(3)]
    expected = cloud_prompts(uploads, AMP["alphaK"], AMP["sigma"])
    second = cloud_sent(grid, 2)
    assert sorted(second) == [0, 2]  # only the round's participants are asked
    for c in (0, 2):
        np.testing.assert_array_equal(second[c], expected[c])
    assert not np.array_equal(expected[0], expected[2])
    # Final evaluation: client 1 did not upload in round 2, so it keeps its round-1 cloud prompt.
    final = {m.metadata.dst_node_id - 100: m.content["arrays"]["cloud"].numpy() for m in grid.sent
             if m.content["config"]["pfedprompt"] == "evaluate" and m.content["config"]["server-round"] == 3}
    np.testing.assert_array_equal(final[1], expected[1])
    assert result["rounds"][1]["bytesDown"] == 2 * 8 * 4 and result["rounds"][1]["bytesUp"] == 2 * 8 * 4
