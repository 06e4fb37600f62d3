"""The content of the messages a pfedprompt ServerApp and node exchange (flower/PROTOCOL.md).

Only what the protocol fixes lives here: config keys, message construction, and
the checks a reply must pass before anything is read from it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

DESCRIBE, FIT, FINISH, EVALUATE = "describe", "fit", "finish", "evaluate"
MESSAGE_TYPE = {DESCRIBE: MessageType.QUERY, FIT: MessageType.TRAIN, FINISH: MessageType.TRAIN, EVALUATE: MessageType.EVALUATE}


class ReplyError(ValueError):
    """A reply that breaks the protocol; its node is left out like a failed one."""


def config_record(kind: str, run_config: str, cell: dict[str, Any], server_round: int | None = None, **extra: Any) -> ConfigRecord:
    """The ConfigRecord every server message carries; `extra` adds e.g. `split` or `memory-choices`."""
    config: dict[str, Any] = {"pfedprompt": kind, "run-config": run_config, "cell": json.dumps(cell)}
    if server_round is not None:
        config["server-round"] = server_round
    for key, value in extra.items():
        config[key.replace("_", "-")] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
    return ConfigRecord(config)


def message(kind: str, node_id: int, arrays: ArrayRecord, config: ConfigRecord, group_id: str) -> Message:
    content = RecordDict({"arrays": arrays, "config": config}) if kind != DESCRIBE else RecordDict({"config": config})
    return Message(content=content, dst_node_id=node_id, message_type=MESSAGE_TYPE[kind], group_id=group_id)


def float32_bytes(arrays: ArrayRecord) -> int:
    """Bytes of the float32 tensors in a record, as the simulation counts what crosses."""
    return sum(int(np.prod(a.shape)) * 4 for a in arrays.values())


def vectors(arrays: ArrayRecord) -> dict[str, np.ndarray]:
    return {name: a.numpy() for name, a in arrays.items()}


def array_record(tensors: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(t, dtype=np.float32)) for name, t in tensors.items()})


def facts_of(reply: Message) -> dict[str, Any]:
    content = reply.content
    if "facts" not in content.config_records or "json" not in content["facts"]:
        raise ReplyError('describe reply without "facts" (a ConfigRecord with key "json")')
    try:
        facts = json.loads(content["facts"]["json"])
    except (TypeError, ValueError) as err:
        raise ReplyError(f"describe reply: facts are not JSON ({err})") from err
    missing = [k for k in FACT_KEYS if k not in facts]
    if missing:
        raise ReplyError(f"describe reply: facts lack {', '.join(missing)}")
    return facts


FACT_KEYS = (
    "client", "clients", "trainCount", "testCount", "classes", "cell", "cellConfig", "rounds", "participants",
    "minClients", "timeoutSeconds", "uploadSpec", "communicates", "trainsPrompt", "hasFinish", "memoryGrid",
    "evaluateEachRound", "weighted",
)
# Facts that differ from node to node; every other fact must be the same on all of them.
CLIENT_FACTS = ("client", "trainCount", "testCount", "classes")


def metrics_of(reply: Message, client: int, required: tuple[str, ...] = ("num-examples", "client")) -> dict[str, Any]:
    records = reply.content.metric_records
    if "metrics" not in records:
        raise ReplyError('reply without "metrics"')
    metrics = dict(records["metrics"])
    missing = [k for k in required if k not in metrics]
    if missing:
        raise ReplyError(f"metrics lack {', '.join(missing)}")
    if metrics["client"] != client:
        raise ReplyError(f"reply names client {metrics['client']}, but this node described client {client}")
    return metrics


def check_upload(reply: Message, spec: dict[str, int]) -> ArrayRecord:
    """The reply's upload if it is exactly the declared tensors (names, float32, lengths, finite)."""
    records = reply.content.array_records
    upload = records["arrays"] if "arrays" in records else ArrayRecord()
    if set(upload.keys()) != set(spec):
        raise ReplyError(f"uploaded {sorted(upload.keys())}, the method declares {sorted(spec)}")
    for name, length in spec.items():
        values = upload[name].numpy()
        if values.dtype != np.float32 or values.ndim != 1 or values.size != length:
            raise ReplyError(f'upload "{name}" is {values.dtype} {list(values.shape)}, expected float32 [{length}]')
        if not np.all(np.isfinite(values)):
            raise ReplyError(f'upload "{name}" holds non-finite values')
    return upload


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
