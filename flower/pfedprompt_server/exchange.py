"""One exchange of messages with the cell's nodes: who was asked, who answered, what crossed.

Strategies build their messages through `Participation.messages` and read
replies through `Participation.receive`, so every exchange is checked and
counted the same way: error replies, missing replies and replies that break
the protocol are left out and recorded, bytes are counted as the simulation
counts them, and too few answers stop the run with an error naming the clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, Message
from flwr.common import log

from . import protocol
from .cohort import Cohort
from .failures import Failure, FederationError


@dataclass
class Exchange:
    stage: str
    kind: str
    clients: list[int]  # asked, in order
    sent: dict[int, int] = field(default_factory=dict)  # node id -> client
    bytes_down: int = 0
    bytes_up: int = 0
    metrics: dict[int, dict[str, Any]] = field(default_factory=dict)  # client -> metrics of its valid reply
    uploads: dict[int, ArrayRecord] = field(default_factory=dict)  # client -> its checked upload (fit)
    valid: list[Message] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class Participation:
    """The exchanges of one cell with its nodes."""

    def __init__(self, cohort: Cohort, run_config: str, cell: dict[str, Any]) -> None:
        self.cohort = cohort
        self.run_config = run_config
        self.cell = cell
        self.failures: list[Failure] = []  # every stage of the cell
        self.last: Exchange | None = None

    def messages(
        self, kind: str, stage: str, clients: Iterable[int], arrays_for: Callable[[int], ArrayRecord], server_round: int,
        count_download: bool = True, **extra: Any,
    ) -> list[Message]:
        """One message per client's node, each carrying what `arrays_for(client)` gives it."""
        exchange = Exchange(stage=stage, kind=kind, clients=list(clients))
        config = protocol.config_record(kind, self.run_config, self.cell, server_round, **extra)
        out = []
        for client in exchange.clients:
            node = self.cohort.node_of.get(client)
            if node is None:
                exchange.failures.append(Failure(stage, client, "no node holds this client"))
                continue
            arrays = arrays_for(client)
            exchange.sent[node] = client
            if count_download:
                exchange.bytes_down += protocol.float32_bytes(arrays)
            out.append(protocol.message(kind, node, arrays, config, group_id=f"{self.cell_id}/{stage}"))
        self.last = exchange
        return out

    @property
    def cell_id(self) -> str:
        return self.cohort.facts["cell"]["id"]

    def receive(self, replies: Iterable[Message], upload_spec: dict[str, int] | None = None) -> Exchange:
        """Sorts the replies to the last `messages`: valid ones kept, the rest recorded as failures."""
        exchange = self.last
        assert exchange is not None, "receive() before messages()"
        answered: set[int] = set()
        for reply in replies:
            node = reply.metadata.src_node_id
            client = exchange.sent.get(node)
            if client is None or client in answered:
                continue  # not asked in this exchange, or a duplicate
            answered.add(client)
            if reply.has_error():
                exchange.failures.append(Failure(exchange.stage, client, f"error reply (code {reply.error.code}): {reply.error.reason}"))
                continue
            try:
                metrics = protocol.metrics_of(reply, client)
                if upload_spec is not None:
                    upload = protocol.check_upload(reply, upload_spec)
                    exchange.uploads[client] = upload
                    exchange.bytes_up += protocol.float32_bytes(upload)
            except protocol.ReplyError as err:
                exchange.failures.append(Failure(exchange.stage, client, str(err)))
                continue
            exchange.metrics[client] = metrics
            exchange.valid.append(reply)
        for client in exchange.sent.values():
            if client not in answered:
                exchange.failures.append(Failure(exchange.stage, client, f"no reply within {self.cohort.timeout:g} s" if self.cohort.timeout is not None else "no reply"))
        self.failures.extend(exchange.failures)
        for f in exchange.failures:
            log(WARNING, "%s: client %d left out: %s", exchange.stage, f.client, f.reason)
        required = min(self.cohort.min_clients, len(exchange.clients))
        if len(exchange.valid) < required:
            raise FederationError(
                f"{self.cell_id}, {exchange.stage}: {len(exchange.valid)} of {len(exchange.clients)} clients answered, "
                f"fewer than minClients ({self.cohort.min_clients}); "
                + "; ".join(f"client {f.client}: {f.reason}" for f in exchange.failures)
            )
        log(INFO, "%s: %d of %d clients answered", exchange.stage, len(exchange.valid), len(exchange.clients))
        return exchange
