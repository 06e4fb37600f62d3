"""A Grid whose `send_and_receive` looks for replies every `interval` seconds.

Flower's own waits 3 s between pulls: a round of a small prompt model takes
well under that, so a run would spend most of its time asleep. Everything
else is the wrapped Grid's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid


class PolledGrid:
    def __init__(self, grid: Grid, interval: float) -> None:
        self._grid = grid
        self._interval = interval

    def __getattr__(self, name: str):
        return getattr(self._grid, name)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        waiting = set(self._grid.push_messages(messages))
        deadline = None if timeout is None else time.time() + timeout
        replies: list[Message] = []
        while waiting:
            got = list(self._grid.pull_messages(waiting))
            replies.extend(got)
            waiting.difference_update(m.metadata.reply_to_message_id for m in got)
            if not waiting or (deadline is not None and time.time() >= deadline):
                break
            time.sleep(self._interval)
        return replies
