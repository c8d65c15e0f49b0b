"""The envelope every stream message travels in.

A message on a Switchboard stream carries the run it belongs to, the step number, an idempotency key
(a redelivered message with a key already processed has no second effect), the W3C `traceparent` of the
span that produced it (so one trace follows a turn across stream hops), and a protobuf body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from switchboard.errors import MalformedMessage


@dataclass(frozen=True)
class Envelope:
    """A stream message: routing facts in the clear, the payload as a serialized protobuf."""

    run_id: str
    step: int
    idempotency_key: str
    traceparent: str
    body: bytes

    def to_fields(self) -> dict[str, bytes | str]:
        """The Redis stream fields for this envelope."""
        return {
            "run_id": self.run_id,
            "step": str(self.step),
            "key": self.idempotency_key,
            "traceparent": self.traceparent,
            "body": self.body,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Envelope:
        """Parse the fields of a stream entry; a missing field raises `MalformedMessage`."""
        try:
            return cls(
                run_id=fields[b"run_id"].decode(),
                step=int(fields[b"step"]),
                idempotency_key=fields[b"key"].decode(),
                traceparent=fields.get(b"traceparent", b"").decode(),
                body=fields[b"body"],
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise MalformedMessage(f"stream entry is not a Switchboard envelope: {exc!r}") from exc


def step_key(run_id: str, step: int, stage: str) -> str:
    """The idempotency key of what `stage` emits for one step of a run.

    Derived, not random, so that a stage that emits twice for the same step (after a crash between
    its effect and its acknowledgement) produces a message the next stage recognises as seen.
    """
    return f"{run_id}:{step}:{stage}"


def as_text(value: bytes | str) -> str:
    """A value Redis or gRPC gave as bytes or as text (by how the client was made), as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
