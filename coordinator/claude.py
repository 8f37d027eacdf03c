"""Claude specialists, the parts free of I/O: models, prices, usage and what an attempt returns.

The worker's `claude:` settings (in `temporal-dev.yaml`) map model aliases to model ids and
price each model; the agent loop (activities/claude/) uses them, the workflows add up the
usage, the report shows it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Per million tokens, USD, as published by Anthropic (override them in temporal-dev.yaml).
DEFAULT_MODELS = {
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-8",
    "haiku": "claude-haiku-4-5",
}
DEFAULT_MAX_TURNS = 50


class ModelPrice(BaseModel):
    """USD per million tokens. Cache writes are the 5-minute ones (1.25 x input)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Annotated[float, Field(ge=0)]
    output: Annotated[float, Field(ge=0)]
    cache_write: Annotated[float, Field(ge=0)] | None = None
    cache_read: Annotated[float, Field(ge=0)] | None = None

    def cost(self, usage: Usage) -> float:
        cache_write = self.cache_write if self.cache_write is not None else self.input * 1.25
        cache_read = self.cache_read if self.cache_read is not None else self.input * 0.1
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * cache_write
            + usage.cache_read_input_tokens * cache_read
        ) / 1_000_000


DEFAULT_PRICES = {
    "claude-sonnet-4-6": ModelPrice(input=3, output=15, cache_write=3.75, cache_read=0.30),
    "claude-sonnet-4-5": ModelPrice(input=3, output=15, cache_write=3.75, cache_read=0.30),
    "claude-opus-4-8": ModelPrice(input=5, output=25, cache_write=6.25, cache_read=0.50),
    "claude-opus-4-7": ModelPrice(input=5, output=25, cache_write=6.25, cache_read=0.50),
    "claude-opus-4-6": ModelPrice(input=5, output=25, cache_write=6.25, cache_read=0.50),
    "claude-opus-4-5": ModelPrice(input=5, output=25, cache_write=6.25, cache_read=0.50),
    "claude-haiku-4-5": ModelPrice(input=1, output=5, cache_write=1.25, cache_read=0.10),
}


class Usage(BaseModel):
    """Tokens as the Messages API counts them; `input_tokens` excludes cached ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class ClaudeSettings(BaseModel):
    """The `claude:` section of temporal-dev.yaml: what the worker's agent loop runs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Alias (front matter `model: sonnet`) -> model id. A full id passes through unchanged.
    models: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODELS))
    default_model: str = "sonnet"  # for `model: inherit` or none, unless the plan sets one
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))
    max_output_tokens: Annotated[int, Field(gt=0)] = 16_000  # per model call
    request_timeout: Annotated[float, Field(gt=0, description="seconds")] = 600
    bash_timeout: Annotated[float, Field(gt=0, description="seconds")] = 120
    tool_output_chars: Annotated[int, Field(ge=1000)] = 30_000
    # Context documents in the system prompt, at most this many characters in all.
    context_chars: Annotated[int, Field(ge=0)] = 100_000
    # Extra environment variable names bash must never see (on top of the built-in rules).
    secret_env: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: object) -> object:
        # A user's table adds to (or overrides) the defaults rather than replacing them all.
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("models"), dict):
                data["models"] = DEFAULT_MODELS | data["models"]
            if isinstance(data.get("prices"), dict):
                data["prices"] = {k: v.model_dump() for k, v in DEFAULT_PRICES.items()} | data[
                    "prices"
                ]
        return data

    def resolve_model(self, requested: str | None, plan_default: str | None = None) -> str:
        """Front matter `model` -> a model id: aliases through the table, `inherit` or none
        to the plan's default, then the settings' default."""
        for choice in (requested, plan_default, self.default_model):
            if choice and choice != "inherit":
                return self.models.get(choice, choice)
        return self.models.get("sonnet", DEFAULT_MODELS["sonnet"])

    def cost(self, model: str, usage: Usage) -> float | None:
        """USD, or None for a model without a price (the report then says 'unpriced')."""
        price = self.prices.get(model)
        return price.cost(usage) if price is not None else None


class AttemptSpend(BaseModel):
    """What an attempt spent so far: in its heartbeats and in the details of the error it
    fails with, so that an attempt that never returns a result is still paid for."""

    tokens_in: int = 0  # input, cache creation and cache read tokens
    tokens_out: int = 0
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


# "error": Claude Code ended the run with an error result (claude-code backend).
StopReason = Literal["finish", "end_turn", "max_turns", "budget", "stuck", "blocked", "error"]


class FinishReport(BaseModel):
    """The `finish` tool's input: how a Claude specialist says it is done."""

    status: Literal["done", "blocked"]
    summary: str
    files_changed: list[str] = Field(default_factory=list)
    notes_for_reviewer: str = ""
    # Reviewers only: their verdict and findings ("file:line: what to change").
    verdict: Literal["approve", "changes_requested"] | None = None
    findings: list[str] = Field(default_factory=list)


class AgentAttempt(BaseModel):
    """What history keeps of one Claude attempt (the transcript stays on disk)."""

    model: str
    turns: int
    stop_reason: StopReason
    transcript_path: str
    usage: Usage
    finish: FinishReport | None = None
    resumed_from_turn: int = 0  # > 0 when a retried activity picked up its transcript
