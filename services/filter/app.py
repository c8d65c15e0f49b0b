"""The filter's index, kept current with the tool host's catalogue, and what it does with a step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from services.filter.core import Encoder, Ranked, ToolEntry, ToolIndex, catalogue_digest
from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.errors import UpstreamUnavailable
from switchboard.rpc import ToolHostClient
from switchboard.streams import Emit, emit
from switchboard.telemetry import STEP_OUTCOMES
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)
STAGE = "filter"


def entries(tools: Sequence[pb.ToolInfo]) -> list[ToolEntry]:
    return [ToolEntry(t.name, t.server, t.description, t.input_schema_json or "{}") for t in tools]


def candidates(ranked: list[Ranked]) -> list[pb.Candidate]:
    return [
        pb.Candidate(
            tool=r.tool.name,
            server=r.tool.server,
            score=r.score,
            description=r.tool.description,
            input_schema_json=r.tool.input_schema_json,
        )
        for r in ranked
    ]


class ToolFilter:
    def __init__(self, encode: Encoder, toolhost: ToolHostClient, k: int) -> None:
        self.encode = encode
        self.toolhost = toolhost
        self.k = k
        self.index: ToolIndex | None = None

    async def build(self) -> None:
        """Wait for the catalogue and build the index from it."""
        tools = entries(await self.toolhost.wait_for_tools())
        self.index = await asyncio.to_thread(ToolIndex, self.encode, tools)
        log.info("tool index built: %d tools", len(tools))

    async def refresh_forever(self, every_seconds: float) -> None:
        """Rebuild the index whenever the catalogue changes."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                tools = entries(await self.toolhost.list_tools())
            except UpstreamUnavailable as exc:
                log.warning("catalogue refresh skipped: %s", exc)
                continue
            if tools and (self.index is None or catalogue_digest(tools) != self.index.digest):
                self.index = await asyncio.to_thread(ToolIndex, self.encode, tools)
                log.info("tool index rebuilt: %d tools", len(tools))

    async def rank(self, text: str, k: int | None = None) -> list[Ranked]:
        if self.index is None:
            raise UpstreamUnavailable("the tool index is not built yet")
        return await asyncio.to_thread(self.index.rank, text, k or self.k)

    async def on_step(self, envelope: Envelope) -> Sequence[Emit]:
        step = pb.Step.FromString(envelope.body)
        ranked = await self.rank(step.intent)
        del step.candidates[:]
        step.candidates.extend(candidates(ranked))
        step.hops.append(keys.STEPS)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="ranked").inc()
        return [
            emit(
                keys.RANKED,
                step.run_id,
                step.number,
                step_key(step.run_id, step.number, STAGE),
                step.SerializeToString(),
            )
        ]
