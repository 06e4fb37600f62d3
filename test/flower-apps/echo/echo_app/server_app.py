"""Sends each connected node a `train` message (ArrayRecord + ConfigRecord) and checks
that the reply doubles the arrays and reports metrics, with the metadata Flower
requires of a reply. Writes what it saw to `result-path` as JSON; raises on any failed
check, so the run ends as failed."""

import json
import time

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


def wait_for_nodes(grid: Grid, expected: int, timeout: float) -> list[int]:
    deadline = time.time() + timeout
    while True:
        node_ids = sorted(grid.get_node_ids())
        if len(node_ids) >= expected:
            return node_ids
        if time.time() > deadline:
            raise RuntimeError(f"only {len(node_ids)} of {expected} nodes connected")
        time.sleep(0.5)


def request(node_id: int, action: str, group: str) -> Message:
    arrays = ArrayRecord(
        {
            "w": Array(np.arange(6, dtype=np.float32).reshape(2, 3) / 2),
            "b": Array(np.array([1.5, -3.0], dtype=np.float64)),
            "big": Array(np.full(300_000, 0.25, dtype=np.float32)),  # > 1 MiB of data
        }
    )
    config = ConfigRecord({"action": action, "server-round": 1, "note": "héllo"})
    return Message(
        RecordDict({"arrays": arrays, "config": config}),
        dst_node_id=node_id,
        message_type="train",
        group_id=group,
        ttl=120,
    )


def check_reply(sent: Message, reply: Message, node_id: int) -> dict:
    meta = reply.metadata
    seen = {
        # Node ids are uint64: as strings, JSON numbers would lose digits in JavaScript.
        "node": str(node_id),
        "src_node_id": str(meta.src_node_id),
        "dst_node_id": str(meta.dst_node_id),
        "group_id": meta.group_id,
        "message_type": meta.message_type,
        "reply_to_ok": meta.reply_to_message_id == sent.metadata.message_id,
        "ttl_ok": meta.created_at + meta.ttl <= sent.metadata.created_at + sent.metadata.ttl + 0.1,
    }
    if reply.has_error():
        seen["error"] = {"code": reply.error.code, "reason": reply.error.reason}
        return seen
    arrays = reply.content.array_records["arrays"]
    w = arrays["w"].numpy()
    b = arrays["b"].numpy()
    big = arrays["big"].numpy()
    expected_w = np.arange(6, dtype=np.float32).reshape(2, 3)
    seen["arrays_ok"] = bool(
        w.dtype == np.float32 and w.shape == (2, 3) and np.array_equal(w, expected_w)
        and b.dtype == np.float64 and np.array_equal(b, np.array([3.0, -6.0]))
        and big.shape == (300_000,) and bool(np.all(big == 0.5))
    )
    metrics = reply.content.metric_records["metrics"]
    seen["metrics"] = {k: v for k, v in metrics.items()}
    seen["metric_types"] = {k: type(v).__name__ for k, v in metrics.items()}
    return seen


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    timeout = float(cfg["timeout"])
    node_ids = wait_for_nodes(grid, int(cfg["expected-nodes"]), timeout)
    actions = ["fail", "double"] if cfg["scenario"] == "error-then-double" else ["double"]
    results = []
    for round_index, action in enumerate(actions, start=1):
        messages = [request(n, action, str(round_index)) for n in node_ids]
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        by_src = {r.metadata.src_node_id: r for r in replies}
        for sent in messages:
            node = sent.metadata.dst_node_id
            if node not in by_src:
                results.append({"node": str(node), "action": action, "missing": True})
                continue
            results.append({"action": action, **check_reply(sent, by_src[node], node)})
    with open(cfg["result-path"], "w") as f:
        json.dump({"nodes": [str(n) for n in node_ids], "results": results}, f)
