"""What a retune job trains with: LoRA settings shared by every method, plus each method's own fields.

Defaults work on a CPU (no bf16, no gradient checkpointing) and on a GPU (bf16 is switched on there by
``train`` when the device supports it). Every config checks itself on construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

METHODS = ("dpo", "kto", "sft")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError(f"LoRA r and alpha must be at least 1, got r={self.r}, alpha={self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class RetuneConfig:
    """One job's training settings. ``beta`` is DPO's and KTO's temperature; ``sft_weight`` adds an SFT term
    on the chosen answer to DPO, which keeps very small models from collapsing."""

    method: str = "dpo"
    lora: LoraSettings = field(default_factory=LoraSettings)
    learning_rate: float = 5e-4
    epochs: float = 3.0
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    seed: int = 0
    beta: float = 0.1
    sft_weight: float = 1.0
    logging_steps: int = 1
    save_steps: int = 0  # 0: a checkpoint at each epoch's end
    merge: bool = False  # also save the base with the adapter merged in
    report_to: tuple[str, ...] = ()  # e.g. ("tensorboard",); dropped with a warning when not installed

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        # Written as "not (x > 0)" so that NaN (which click's float options accept) fails too.
        if not (self.learning_rate > 0 and self.epochs > 0):
            raise ValueError(f"learning_rate and epochs must be positive, got {self.learning_rate} and {self.epochs}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be at least 1")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if not self.sft_weight >= 0:
            raise ValueError(f"sft_weight must be zero or more, got {self.sft_weight}")

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict that ``from_json`` turns back into the same config."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetuneConfig:
        """The config from ``as_json`` output; unknown keys are an error (a typo must not be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown retune settings {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        lora = values.pop("lora", {})
        if isinstance(lora, dict):
            target = lora.get("target_modules", "all-linear")
            lora = LoraSettings(**{**lora, "target_modules": target if isinstance(target, str) else tuple(target)})
        values["report_to"] = tuple(values.get("report_to", ()))
        return cls(lora=lora, **values)
