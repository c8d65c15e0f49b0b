"""The hostile-input tests' shared fixtures: one event loop thread, one world of traps and one set of
the tool host's servers for the whole package (the servers take a while to start on two cores)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.toolhost import mcp_pool
from tests.hostile.harness import Edge, LoopThread, ToolServers, open_edge
from tests.hostile.world import World, make_world


@pytest.fixture(scope="package")
def background_loop() -> Iterator[LoopThread]:
    """The loop, with the tool host's pings of its servers made rare: each ping is traced, tracing
    draws span ids from the global `random`, and hypothesis refuses to draw an example while anything
    else uses it. The tests ping the servers themselves, between examples."""
    loop = LoopThread()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mcp_pool, "PING_EVERY_SECONDS", 3600.0)
        try:
            yield loop
        finally:
            loop.close()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="package")
def servers(background_loop: LoopThread, world: World) -> Iterator[ToolServers]:
    """Every server of the tool host, started once for the package (they take a while on two cores)."""
    running = ToolServers(background_loop, world)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def edge(background_loop: LoopThread, servers: ToolServers, world: World, redis_url: str) -> Iterator[Edge]:
    running = background_loop.run(open_edge(servers, world, redis_url))
    try:
        yield running
    finally:
        background_loop.run(running.close())
