"""The router's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from switchboard.settings import CommonSettings, default_llm_path


class RouterSettings(CommonSettings):
    router_model: Path = Field(default_factory=default_llm_path, description="GGUF file of the router's model.")
    router_fusion: bool = Field(
        True, description="Let retrieval decide clear cases (the default); false lets the model pick among the top 5."
    )
    router_model_choice: bool = Field(
        False,
        description="Let the model break near-ties between tools; off by default, as it chose worse than "
        "retrieval on the dev halves (docs/benchmarks.md). The model still fills open values.",
    )
    router_use_model: bool = Field(
        True, description="Ask the model to break near-ties and fill open values; false routes on retrieval alone."
    )
    router_span_copy: bool = Field(
        True,
        description="The model copies free-text values as spans of the request under a grammar (the default); "
        "false lets it write them under the schema's grammar (an ablation).",
    )
    router_threads: int = Field(0, ge=0, description="llama.cpp threads; 0 means one per core.")
