"""PromptFL, PromptFL+FT, PromptPer, PromptProx, pFedPrompt and FedOTP: Flower's FedAvg of the uploaded arrays
(FedOTP uploads its global prompt as `context`; its local prompt never leaves the node).

FedAvg is used as it is for aggregation (weighted by `num-examples`); this
subclass changes only who is asked (the cell's participants of the round, by
client index, instead of a random sample of connected nodes) and what is
recorded (per-client metrics, failures and bytes, through `Participation`).
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from .. import protocol
from ..exchange import Participation
from ..failures import FederationError

# The weight FedAvg reads when `methodOptions.weighted` is false: the same for every reply.
UNIT_WEIGHT = "unit-weight"


class PromptFedAvg(FedAvg):
    def __init__(self, participation: Participation, weighted: bool) -> None:
        cohort = participation.cohort
        super().__init__(
            min_train_nodes=cohort.min_clients,
            min_evaluate_nodes=cohort.min_clients,
            min_available_nodes=cohort.min_clients,
            weighted_by_key="num-examples" if weighted else UNIT_WEIGHT,
        )
        self.participation = participation
        self.weighted = weighted

    def download(self, arrays: ArrayRecord, client: int) -> ArrayRecord:
        return arrays  # every client gets the global arrays

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return self.participation.messages(
            protocol.FIT, f"round {server_round}", self.participation.cohort.participants(server_round), lambda _: arrays, server_round,
        )

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        exchange = self.participation.receive(replies, upload_spec=self.participation.cohort.facts["uploadSpec"])
        if not self.weighted:
            for reply in exchange.valid:
                reply.content["metrics"][UNIT_WEIGHT] = 1.0
        if sum(float(m["num-examples"]) for m in exchange.metrics.values()) <= 0 and self.weighted:
            raise FederationError(f"round {server_round}: the uploads carry no weight (no client reports training images)")
        return super().aggregate_train(server_round, exchange.valid)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        raise NotImplementedError("evaluation goes through evaluation.evaluate, which asks every client")
