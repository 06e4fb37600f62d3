"""Asks one `pfedprompt node` to describe a cell, then sends it `fit` messages whose
arrays are wrong (one value short, a NaN, float64, an array the method does not
send), then a good one. Writes every reply (error or arrays and metrics) to
`result-path` as JSON."""

import json
import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


def ask(grid: Grid, node: int, kind: str, message_type: str, config: dict, arrays: ArrayRecord | None, timeout: float) -> Message:
    content = {"config": ConfigRecord({"pfedprompt": kind, **config})}
    if arrays is not None:
        content["arrays"] = arrays
    sent = Message(RecordDict(content), dst_node_id=node, message_type=message_type, group_id=kind)
    replies = list(grid.send_and_receive([sent], timeout=timeout))
    if not replies:
        raise RuntimeError(f"no reply to {kind} within {timeout} s")
    return replies[0]


def seen(reply: Message) -> dict:
    if reply.has_error():
        return {"error": {"code": reply.error.code, "reason": reply.error.reason}}
    arrays = reply.content.array_records.get("arrays", ArrayRecord())
    return {
        "arrays": {name: [str(a.numpy().dtype), list(a.shape)] for name, a in arrays.items()},
        "metrics": dict(reply.content.metric_records["metrics"]),
    }


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    timeout = float(cfg["timeout"])
    deadline = time.time() + timeout
    while not grid.get_node_ids():
        if time.time() > deadline:
            raise RuntimeError("no node connected")
        time.sleep(0.2)
    node = sorted(grid.get_node_ids())[0]
    with open(str(cfg["config"]), encoding="utf-8") as f:
        run_config = json.dumps(json.load(f))
    base = {"run-config": run_config, "cell": json.dumps({"method": cfg["method"], "seed": 1, "shots": int(cfg["shots"])})}
    described = ask(grid, node, "describe", MessageType.QUERY, base, None, timeout)
    if described.has_error():
        raise RuntimeError(f"describe failed: {described.error.reason}")
    good = {name: a.numpy() for name, a in described.content.array_records["arrays"].items()}
    first = sorted(good)[0]

    def variant(change) -> ArrayRecord:
        arrays = {name: v.copy() for name, v in good.items()}
        change(arrays)
        return ArrayRecord({name: Array(v) for name, v in arrays.items()})

    def short(arrays):
        arrays[first] = arrays[first][:-1]

    def nan(arrays):
        arrays[first][3] = np.nan

    def float64(arrays):
        arrays[first] = arrays[first].astype(np.float64)

    def extra(arrays):
        arrays["smuggled"] = np.zeros(4, dtype=np.float32)

    cases = [("short", short), ("nan", nan), ("float64", float64), ("extra", extra), ("good", lambda arrays: None)]
    results = {"node": str(node), "array": first}
    for name, change in cases:
        reply = ask(grid, node, "fit", MessageType.TRAIN, {**base, "server-round": 1}, variant(change), timeout)
        results[name] = seen(reply)
    with open(str(cfg["result-path"]), "w", encoding="utf-8") as f:
        json.dump(results, f)
