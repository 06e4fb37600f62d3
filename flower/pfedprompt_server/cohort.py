"""Which node holds which client, and what the nodes described: the `describe` step of a cell.

Every node validates the run config itself and answers with the facts of the
cell (PROTOCOL.md §1). The server takes those facts as the cell's truth, but
only when every node agrees on everything that is not about its own client,
and on the initial arrays bit for bit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.common import log
from flwr.serverapp import Grid

from . import protocol
from .failures import Failure, FederationError


@dataclass
class Cohort:
    node_of: dict[int, int]  # client -> node id
    facts: dict[str, Any]  # what every node agrees on
    client_facts: dict[int, dict[str, Any]]  # client -> its own facts (trainCount, testCount, classes)
    initial: ArrayRecord

    @property
    def clients(self) -> list[int]:
        return sorted(self.node_of)

    @property
    def min_clients(self) -> int:
        return int(self.facts["minClients"])

    @property
    def timeout(self) -> float | None:
        """Seconds a node has to reply to one step; None: no limit."""
        value = self.facts["timeoutSeconds"]
        return None if value is None else float(value)

    @property
    def rounds(self) -> int:
        return int(self.facts["rounds"])

    def participants(self, server_round: int) -> list[int]:
        return [int(c) for c in self.facts["participants"][server_round - 1]]


def shared_facts(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if k not in protocol.CLIENT_FACTS}


def same_arrays(a: ArrayRecord, b: ArrayRecord) -> bool:
    if set(a.keys()) != set(b.keys()):
        return False
    return all(a[k].dtype == b[k].dtype and np.array_equal(a[k].numpy(), b[k].numpy()) for k in a.keys())


def build_cohort(cell: dict[str, Any], replies: dict[int, Message], failures: list[Failure]) -> Cohort:
    """The cohort from describe replies by node id; replies that break the protocol become failures."""
    node_of: dict[int, int] = {}
    client_facts: dict[int, dict[str, Any]] = {}
    agreed: tuple[int, dict[str, Any], ArrayRecord] | None = None
    for node, reply in sorted(replies.items()):
        if reply.has_error():
            failures.append(Failure("describe", None, f"node {node}: error reply (code {reply.error.code}): {reply.error.reason}"))
            continue
        try:
            facts = protocol.facts_of(reply)
        except protocol.ReplyError as err:
            failures.append(Failure("describe", None, f"node {node}: {err}"))
            continue
        arrays = reply.content.array_records.get("arrays", ArrayRecord())
        asked = {k: facts["cell"].get(k) for k in ("method", "seed", "shots")}
        if asked != cell:
            raise FederationError(f"node {node} described the cell {asked}, but was asked for {cell}")
        if agreed is None:
            agreed = (node, shared_facts(facts), arrays)
        elif json.dumps(shared_facts(facts), sort_keys=True) != json.dumps(agreed[1], sort_keys=True):
            differing = sorted(k for k in agreed[1] if json.dumps(agreed[1][k], sort_keys=True) != json.dumps(facts.get(k), sort_keys=True))
            raise FederationError(f"nodes {agreed[0]} and {node} disagree on {', '.join(differing) or 'the facts'} of {cell}: do they run the same config and version?")
        elif not same_arrays(arrays, agreed[2]):
            raise FederationError(f"nodes {agreed[0]} and {node} describe different initial arrays for {cell}")
        client = int(facts["client"])
        if not 0 <= client < int(facts["clients"]):
            raise FederationError(f"node {node} holds client {client}, outside 0 … {int(facts['clients']) - 1}")
        if client in node_of:
            raise FederationError(f"nodes {node_of[client]} and {node} both hold client {client}")
        node_of[client] = node
        client_facts[client] = {k: facts[k] for k in protocol.CLIENT_FACTS}
    if agreed is None:
        raise FederationError(f"no node described {cell}: " + "; ".join(f.reason for f in failures))
    return Cohort(node_of=node_of, facts=agreed[1], client_facts=client_facts, initial=agreed[2])


def describe(grid: Grid, run_config: str, cell: dict[str, Any], timeout: float, wait: float) -> tuple[Cohort, list[Failure]]:
    """Asks every connected node to describe `cell`; waits up to `wait` s for the nodes of all clients."""
    config = protocol.config_record(protocol.DESCRIBE, run_config, cell)
    replies: dict[int, Message] = {}
    deadline = time.monotonic() + wait
    while True:
        new = [n for n in grid.get_node_ids() if n not in replies]
        if new:
            messages = [protocol.message(protocol.DESCRIBE, n, ArrayRecord(), config, group_id="describe") for n in new]
            answered = {r.metadata.src_node_id: r for r in grid.send_and_receive(messages, timeout=timeout)}
            for n in new:  # a node that did not answer is asked again if it is still connected
                if n in answered:
                    replies[n] = answered[n]
        valid = [r for r in replies.values() if not r.has_error()]
        expected = _expected_clients(valid)
        if expected is not None and len(valid) >= expected or time.monotonic() > deadline:
            break
        if not valid and replies and set(replies) >= set(grid.get_node_ids()):
            break  # every connected node answered, none usefully: waiting would not change that
        time.sleep(1)
    failures: list[Failure] = []
    cohort = build_cohort(cell, replies, failures)
    total = int(cohort.facts["clients"])
    for client in range(total):
        if client not in cohort.node_of:
            failures.append(Failure("describe", client, f"no node holding this client answered within {wait:g} s"))
    if len(cohort.node_of) < cohort.min_clients:
        raise FederationError(
            f"{cohort.facts['cell']['id']}: {len(cohort.node_of)} of {total} clients have a node, fewer than minClients ({cohort.min_clients}); "
            + "; ".join(f.reason for f in failures)
        )
    log(INFO, "%s: clients %s on nodes %s", cohort.facts["cell"]["id"], cohort.clients, [cohort.node_of[c] for c in cohort.clients])
    return cohort, failures


def _expected_clients(replies: list[Message]) -> int | None:
    for reply in replies:
        try:
            return int(protocol.facts_of(reply)["clients"])
        except (protocol.ReplyError, ValueError, TypeError):
            continue
    return None
