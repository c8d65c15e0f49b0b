"""Start the filter: `python -m services.filter`."""

from __future__ import annotations

import os

from services.filter.app import ToolFilter, load_examples, load_generated, merge_examples
from services.filter.server import FilterServicer
from services.filter.settings import FilterSettings
from switchboard import service
from switchboard.errors import ConfigurationError
from switchboard.rpc import ToolHostClient
from switchboard.service import ServiceRuntime
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


def load_encoder(settings: FilterSettings):  # noqa: ANN201 - an Encoder
    """The sentence-transformers model, from its folder on disk; nothing is fetched from a hub."""
    if not (settings.embedding_model / "config.json").is_file():
        raise ConfigurationError(
            f"no sentence-transformers model in {settings.embedding_model}; `make train` makes the "
            "default one, or set SWITCHBOARD_EMBEDDING_MODEL to a model folder"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from threadpoolctl import threadpool_limits

    # Encoding one request and scoring a few thousand vectors is a few milliseconds of work: spread over
    # every core, the threads spin on after it and take the cores from the stages that come next
    # (measured: 100 ms of CPU per step instead of 10; docs/benchmarks.md).
    torch.set_num_threads(settings.filter_threads)
    threadpool_limits(limits=settings.filter_threads)
    model = SentenceTransformer(str(settings.embedding_model), device="cpu")
    return lambda texts: model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)


async def main(settings: FilterSettings) -> None:
    runtime = ServiceRuntime("filter", settings)
    generated, vectors = load_generated(settings.embedding_model)
    tool_filter = ToolFilter(
        load_encoder(settings),
        ToolHostClient(settings.toolhost_addr, runtime.internal_key),
        settings.filter_k,
        merge_examples(load_examples(settings.filter_examples), generated),
        settings.filter_min_similarity,
        settings.filter_dense_weight,
        vectors,
        settings.filter_caller_tools_cached,
        settings.filter_caller_min_similarity,
    )

    async def refresh() -> None:
        await tool_filter.refresh_forever(settings.filter_refresh_seconds)

    await runtime.serve(
        lambda server: pb_grpc.add_FilterServicer_to_server(FilterServicer(tool_filter), server),
        background=[refresh],
        ready=tool_filter.build,
    )


if __name__ == "__main__":
    service.run(main(FilterSettings()))
