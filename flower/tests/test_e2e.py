"""The ServerApp end to end over Flower's real engine: a SuperLink, three Python SuperNodes running
fake_client_app (PROTOCOL.md with deterministic numbers), and `flwr run`. About 30 s;
PFEDPROMPT_SKIP_E2E=1 skips it.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
FLOWER = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    os.environ.get("PFEDPROMPT_SKIP_E2E") == "1" or not (BIN / "flower-superlink").exists(),
    reason="PFEDPROMPT_SKIP_E2E=1, or no flower-superlink beside this Python",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cell_over_a_real_superlink(tmp_path):
    home, app, out = tmp_path / "home", tmp_path / "app", tmp_path / "out"
    home.mkdir()
    link = free_port()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "e2e"\n\n[superlink.e2e]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    # The app bundle: our ServerApp, with the fake ClientApp in place of the TypeScript nodes.
    shutil.copytree(FLOWER / "pfedprompt_server", app / "pfedprompt_server", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("fake_node.py", "fake_client_app.py"):
        shutil.copy(FLOWER / "tests" / name, app / name)
    pyproject = (FLOWER / "pyproject.toml").read_text().replace('"pfedprompt_server.client_app:app"', '"fake_client_app:app"')
    (app / "pyproject.toml").write_text(pyproject.split("[tool.pytest")[0])
    config = tmp_path / "experiment.json"
    config.write_text(json.dumps({"federation": {"rounds": 1}, "methods": ["promptamp"], "seeds": [3], "evaluation": {"eachRound": False}}))

    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    no_installs = "--disable-runtime-dependency-installation"  # run in this venv; nothing is fetched
    processes = []

    def start(*args, log):
        processes.append(subprocess.Popen(args, env=env, stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("flower-superlink", "--insecure", "--port", str(link), no_installs, log="superlink.log")
        for client in range(3):
            start("flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--port", str(free_port()),
                  "--node-config", f"client={client} clients=3", log=f"supernode{client}.log")
        started = subprocess.run(
            ["flwr", "run", str(app), "e2e", "--run-config", f"config='{config}' output='{out}' wait-for-nodes=30"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        for _ in range(20):  # the SuperLink may still be starting
            if "Successfully started run" in started.stdout:
                break
            time.sleep(1)
            started = subprocess.run(
                ["flwr", "run", str(app), "e2e", "--run-config", f"config='{config}' output='{out}' wait-for-nodes=30"],
                env=env, capture_output=True, text=True, timeout=60,
            )
        assert "Successfully started run" in started.stdout, started.stdout + started.stderr
        run_id = re.search(r"started run (\d+)", started.stdout).group(1)
        status = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not status.startswith("finished"):
            time.sleep(1)
            listing = subprocess.run(["flwr", "ls", "e2e", "--format", "json"], env=env, capture_output=True, text=True, timeout=30)
            runs = {r["run-id"]: r for r in json.loads(listing.stdout).get("runs", [])} if listing.stdout.strip().startswith("{") else {}
            status = runs.get(run_id, {}).get("status", "")
        assert status == "finished:completed", runs.get(run_id, {}).get("status-details")
    finally:
        for p in processes:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    doc = json.loads((out / "results.json").read_text())
    (cell,) = doc["cells"]
    assert cell["id"] == "world/tiny/16shot/promptamp/seed3" and "failures" not in cell
    assert [(r["round"], r["bytesUp"], r["bytesDown"]) for r in cell["rounds"]] == [(1, 96, 96)]
    assert [c["accuracy"] for c in cell["clients"]] == pytest.approx([0.502, 0.512, 0.522])  # fake: 0.5 + 0.01·client + 0.001·round
