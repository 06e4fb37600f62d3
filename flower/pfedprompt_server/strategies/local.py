"""Zero-shot CLIP, local CoOp and local Tip-Adapter: nothing is uploaded, so nothing is aggregated.

Local CoOp still trains round by round on each node (its context stays
there); the server only asks, records and passes the initial arrays on.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid

from .. import protocol
from ..exchange import Participation


class LocalOnly:
    def __init__(self, participation: Participation) -> None:
        self.participation = participation

    def download(self, arrays: ArrayRecord, client: int) -> ArrayRecord:
        return arrays

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        # Nothing is communicated, so nothing is counted (as in the simulation).
        return self.participation.messages(
            protocol.FIT, f"round {server_round}", self.participation.cohort.participants(server_round), lambda _: arrays, server_round,
            count_download=False,
        )

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self.participation.receive(replies, upload_spec=self.participation.cohort.facts["uploadSpec"])
        return None, None
