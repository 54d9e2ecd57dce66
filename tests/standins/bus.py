"""Where a component's events go in a test: a list instead of Kafka."""

from __future__ import annotations

from redblue.adapters.kafka import Outgoing


class Sink:
    """Records what a producer sends (:class:`redblue.adapters.kafka.EventProducer`'s interface)."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, out: Outgoing) -> None:
        self.sent.append(out)

    def flush(self, timeout: float = 30.0) -> None:
        pass

    def events(self, kind: type[object] = object) -> list[object]:
        """The events sent so far (of ``kind``), in order."""
        return [o.event for o in self.sent if isinstance(o.event, kind)]
