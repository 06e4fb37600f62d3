import numpy as np
import pytest

from conftest import run
from fake_node import LENGTH, FakeNode, initial_context, train_count, upload_delta


def fit_messages(grid, server_round):
    return [m for m in grid.sent if m.content["config"]["pfedprompt"] == "fit" and m.content["config"]["server-round"] == server_round]


def expected_average(clients, weighted):
    init = initial_context(1).astype(np.float64)
    weights = np.array([train_count(c) if weighted else 1 for c in clients], dtype=np.float64)
    uploads = np.stack([init + np.float64(upload_delta(c)) for c in clients])
    return (weights[:, None] * uploads).sum(0) / weights.sum()


@pytest.mark.parametrize("weighted", [True, False])
def test_fedavg_weights_uploads_by_num_examples(nodes3, weighted):
    _, grid = run("promptfl", nodes3, rounds=2, methodOptions={"weighted": weighted})
    sent = fit_messages(grid, 2)
    assert len(sent) == 3
    averaged = sent[0].content["arrays"]["context"].numpy()
    assert averaged.dtype == np.float32 and averaged.shape == (LENGTH,)
    np.testing.assert_allclose(averaged, expected_average([0, 1, 2], weighted), rtol=0, atol=1e-7)
    # The two rules give different numbers here (unequal example counts).
    assert not np.allclose(expected_average([0, 1, 2], True), expected_average([0, 1, 2], False), atol=1e-7)


def test_rounds_ask_only_their_participants():
    participants = [[0, 2], [1]]
    nodes = [FakeNode(c, 3, participants=participants) for c in range(3)]
    result, grid = run("promptfl", nodes, rounds=2)
    assert [sorted(m.metadata.dst_node_id - 100 for m in fit_messages(grid, r)) for r in (1, 2)] == participants
    averaged = fit_messages(grid, 2)[0].content["arrays"]["context"].numpy()
    np.testing.assert_allclose(averaged, expected_average([0, 2], True), atol=1e-7)
    # Bytes as the simulation counts them: float32 bytes down to and up from each participant.
    assert [(r["bytesDown"], r["bytesUp"]) for r in result["rounds"]] == [(2 * 32, 2 * 32), (32, 32)]
    # Every client is still evaluated.
    assert [c["id"] for c in result["clients"]] == [0, 1, 2]


def test_fedotp_averages_its_global_prompt_only(nodes3):
    result, grid = run("fedotp", nodes3, rounds=2)
    sent = fit_messages(grid, 2)
    assert len(sent) == 3
    for message in sent:
        arrays = message.content["arrays"]
        assert list(arrays.keys()) == ["context"]  # the global prompt; the local one is never sent or received
        np.testing.assert_allclose(arrays["context"].numpy(), expected_average([0, 1, 2], True), rtol=0, atol=1e-7)
    assert result["rounds"][0]["bytesUp"] == 3 * LENGTH * 4


def test_promptper_averages_its_global_rows(nodes3):
    result, grid = run("promptper", nodes3, rounds=2)
    sent = fit_messages(grid, 2)[0].content["arrays"]
    assert list(sent.keys()) == ["global"] and sent["global"].numpy().shape == (LENGTH // 2,)
    assert result["rounds"][0]["bytesUp"] == 3 * (LENGTH // 2) * 4


def test_finish_and_rounds_and_per_round_accuracy(nodes3):
    result, grid = run("promptfl-ft", nodes3, rounds=3)
    kinds = [(m.content["config"]["pfedprompt"], m.content["config"].get("server-round")) for m in grid.sent]
    assert kinds.count(("finish", 4)) == 3
    assert kinds.index(("finish", 4)) < kinds.index(("evaluate", 4))
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    # Fake accuracy: 0.5 + 0.01·client + 0.001·round; mean over clients 0, 1, 2.
    assert [r["meanAccuracy"] for r in result["rounds"]] == pytest.approx([0.511, 0.512, 0.513])
    assert [r["trainLoss"] for r in result["rounds"]] == pytest.approx([1.01, 0.51, 1 / 3 + 0.01])


def test_no_per_round_evaluation_when_switched_off(nodes3):
    result, grid = run("promptfl", nodes3, rounds=2, evaluation={"eachRound": False})
    assert all("meanAccuracy" not in r for r in result["rounds"])
    assert sum(m.content["config"]["pfedprompt"] == "evaluate" for m in grid.sent) == 6  # the final test and validation only


def test_local_methods_exchange_nothing(nodes3):
    result, _ = run("local-coop", nodes3, rounds=2)
    assert [(r["bytesUp"], r["bytesDown"]) for r in result["rounds"]] == [(0, 0), (0, 0)]
    zero, grid = run("zeroshot", [FakeNode(c, 3) for c in range(3)])
    assert zero["rounds"] == [] and not any(m.content["config"]["pfedprompt"] == "fit" for m in grid.sent)
