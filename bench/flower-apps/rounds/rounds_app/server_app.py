"""Rounds of Flower's FedAvg over every connected node with a prompt-sized array;
writes each round's latency (send → every reply → aggregate) to `result-path`."""

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from pfedprompt_server.polling import PolledGrid  # the pfedprompt ServerApp's grid: replies looked for every poll-interval s

app = ServerApp()
client_app = ClientApp()  # the nodes are TypeScript; this is never run


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    grid = PolledGrid(grid, float(cfg["poll-interval"]))
    expected, timeout = int(cfg["expected-nodes"]), float(cfg["timeout"])
    deadline = time.time() + timeout
    while len(grid.get_node_ids()) < expected:
        if time.time() > deadline:
            raise RuntimeError(f"only {len(grid.get_node_ids())} of {expected} nodes connected")
        time.sleep(0.5)
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=expected, min_available_nodes=expected)
    arrays = ArrayRecord([np.zeros(int(cfg["values"]), dtype=np.float32)])
    rounds = []
    for server_round in range(1, int(cfg["rounds"]) + 1):
        started = time.perf_counter()
        messages = strategy.configure_train(server_round, arrays, ConfigRecord(), grid)
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        aggregated, _ = strategy.aggregate_train(server_round, replies)
        arrays = aggregated if aggregated is not None else arrays
        rounds.append({"round": server_round, "seconds": time.perf_counter() - started, "replies": sum(not r.has_error() for r in replies)})
    Path(cfg["result-path"]).write_text(json.dumps({"nodes": expected, "rounds": rounds}))
