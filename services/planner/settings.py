"""The planner's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.planner.context import SESSION_TOKENS
from services.planner.core import MAX_STEPS
from switchboard.settings import CommonSettings, default_llm_path


class PlannerSettings(CommonSettings):
    planner_model: Path = Field(default_factory=default_llm_path, description="GGUF file of the planner's model.")
    planner_threads: int = Field(0, ge=0, description="llama.cpp threads; 0 means one per core.")
    planner_model_plan: bool = Field(
        False,
        description="Also ask the model for a plan, kept when it finds more real steps than the splitter.",
    )
    planner_splitter: Literal["parse", "rules"] = Field(
        "parse",
        description="How a request is cut into steps: by its dependency parse (the default) or by the older "
        "word rules (an ablation).",
    )
    planner_max_steps: int = Field(MAX_STEPS, ge=1, le=100, description="Most steps one request may take.")
    planner_session_tokens: int = Field(
        SESSION_TOKENS,
        ge=100,
        description="Token budget of a session's remembered turns before the oldest are summarised.",
    )
    planner_session_memory: bool = Field(
        True,
        description="Let a turn see its session's earlier turns (references, paths); off only for ablations.",
    )
