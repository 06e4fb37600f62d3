import json
import shutil
import subprocess

import pytest

from conftest import REPO, run
from fake_node import FakeNode
from pfedprompt_server.results import RESULTS_FORMAT, defaults_of_run, record_cell

CELL_KEYS = ["id", "method", "methodLabel", "dataset", "datasetLabel", "backbone", "shots", "seed", "scoring", "config",
             "clients", "meanAccuracy", "meanValAccuracy", "stdAccuracy", "rounds", "wallSeconds"]


def cells_of_a_small_grid():
    out = []
    for method in ("zeroshot", "promptfl", "promptamp", "pfedprompt"):
        for seed in (1, 2):
            result, _ = run(method, [FakeNode(c, 3) for c in range(3)], rounds=2, seed=seed)
            out.append(result)
    return out


def test_cells_have_the_keys_runner_ts_writes_in_its_order(tmp_path):
    for cell in cells_of_a_small_grid():
        assert list(cell) == CELL_KEYS
        assert all(set(r) <= {"round", "meanAccuracy", "trainLoss", "bytesUp", "bytesDown", "seconds"} for r in cell["rounds"])
        assert all(list(c) == ["id", "accuracy", "testCount", "valAccuracy", "classes"] for c in cell["clients"])
        assert cell["meanValAccuracy"] == sum(c["valAccuracy"] for c in cell["clients"]) / len(cell["clients"])
        assert cell["stdAccuracy"] >= 0 and 0 <= cell["meanAccuracy"] <= 1


def test_results_file_is_rewritten_atomically_with_cells_replaced_by_id(tmp_path):
    cells = cells_of_a_small_grid()
    for cell in cells:
        record_cell(tmp_path, cell)
    again = dict(cells[0], wallSeconds=123.0)
    path = record_cell(tmp_path, again)
    doc = json.loads(path.read_text())
    assert doc["format"] == RESULTS_FORMAT and doc["code"]["version"] and doc["createdAt"].endswith("Z")
    assert [c["id"] for c in doc["cells"]] == [c["id"] for c in cells[1:]] + [cells[0]["id"]]
    assert doc["cells"][-1]["wallSeconds"] == 123.0
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_results_carry_the_defaults_chosen_on_validation_with_those_a_flag_overrode(tmp_path):
    record = {"format": "pfedprompt-default-choices/1", "world": "w", "command": "c", "code": {"version": "0"}, "createdAt": "t",
              "choices": [{"name": "views", "chosen": 1, "candidates": [
                  {"settings": {"data.views": 4}, "scoredOn": ["promptfl"], "valAccuracy": 0.5, "testAccuracy": 0.9, "seeds": [1], "valBySeed": [0.5]},
                  {"settings": {"data.views": 50, "methodOptions.memory.query": "pooled"}, "scoredOn": ["promptfl"], "valAccuracy": 0.6, "testAccuracy": 0.1, "seeds": [1], "valBySeed": [0.6]}]}]}
    config = {"data": {"views": 50}, "methodOptions": {"memory": {"query": "embedding"}}, "defaultChoices": record}
    assert defaults_of_run(config) == {"choices": record, "overridden": ["methodOptions.memory.query"]}
    assert defaults_of_run({"data": {"views": 50}}) is None
    cell, _ = run("zeroshot", [FakeNode(c, 2) for c in range(2)], rounds=1)
    doc = json.loads(record_cell(tmp_path, cell, defaults_of_run(config)).read_text())
    assert list(doc) == ["format", "code", "createdAt", "defaults", "cells"]  # as runner.ts writes it
    assert doc["defaults"]["overridden"] == ["methodOptions.memory.query"]


def test_nan_is_written_as_null(tmp_path):
    cell, _ = run("pfedprompt", [FakeNode(c, 2, no_val=True) for c in range(2)], rounds=1)
    path = record_cell(tmp_path, cell)
    candidates = json.loads(path.read_text())["cells"][0]["config"]["memorySelection"]["candidates"]
    assert all(c["valAccuracy"] is None for c in candidates)


@pytest.mark.skipif(not (REPO / "dist" / "src" / "report" / "results.js").exists() or shutil.which("node") is None,
                    reason="needs the built TypeScript (npm run build) and node")
def test_pfedprompt_report_reads_and_renders_the_file(tmp_path):
    for cell in cells_of_a_small_grid():
        record_cell(tmp_path, cell)
    results = tmp_path / "results.json"
    check = (
        "const m = await import(process.argv[1]);"
        "const r = await m.readResults(process.argv[2]);"
        "console.log(JSON.stringify(r.cells.map((c) => c.id)));"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", check, str(REPO / "dist/src/report/results.js"), str(results)],
                         capture_output=True, text=True, check=True)
    assert len(json.loads(out.stdout)) == 8
    report = subprocess.run(["node", str(REPO / "dist/src/cli/main.js"), "report", "--results", str(results), "--out", str(tmp_path / "report")],
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.html").exists()


def test_final_state_is_a_safetensors_file_of_float32_tensors(tmp_path):
    import numpy as np

    from pfedprompt_server.results import write_final_state

    state = {"context": np.arange(6, dtype=np.float32) / 7, "cloud/1": np.array([[1.5, -2.0]], dtype=np.float32)}
    path = write_final_state(tmp_path, "world/b/4shot/promptamp/seed1", state)
    assert path == tmp_path / "prompts" / "world__b__4shot__promptamp__seed1.safetensors"
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    assert length % 8 == 0
    body = raw[8 + length :]
    for name, array in state.items():
        entry = header[name]
        assert entry["dtype"] == "F32" and entry["shape"] == [array.size]
        start, end = entry["data_offsets"]
        assert np.array_equal(np.frombuffer(body[start:end], dtype="<f4"), array.reshape(-1))
