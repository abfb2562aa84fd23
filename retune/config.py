"""What a retune job trains with: one config class per method (DPO, KTO, SFT) over the fields all methods share.

Each field states its default and its help once, in ``metadata={"help": ...}`` (TRL's ``DPOConfig`` style).
The command line (``evaltune retune``), the app's retune form and the ``accelerate launch`` entry point are all
generated from these classes through ``option_fields``, so their defaults cannot drift apart. Adding a method is
one class here, registered with ``@training_method``, whose ``trl_args`` and ``trainer_class`` hook it to TRL.

Defaults work on a CPU (no bf16, no gradient checkpointing) and on a GPU (``train`` switches bf16 on where the
device supports it). Every config checks itself on construction. Stored job configs carry ``schema_version``;
``load_config`` reads every earlier version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar, get_type_hints

# 1: no schema_version, LoRA settings nested under "lora", beta/sft_weight stored for every method; 2: no processes,
# deepspeed, fsdp, qlora, device or dtype (they load at their defaults: one process, DDP, full-precision LoRA).
SCHEMA_VERSION = 3
DEEPSPEED_STAGES = ("zero2", "zero3")
CONFIGS: dict[str, type[RetuneConfig]] = {}
Config = TypeVar("Config", bound="RetuneConfig")


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A config field with its default and its help (shown by ``--help``, the app form and the accelerate entry).
    ``extra``: ``aliases`` (more command-line flags), ``launcher`` (read by the worker to launch the job, so the
    accelerate entry, which runs inside that launch, has no option for it), ``title`` (the app form's label, where
    the field's name is not how people write it)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class RetuneConfig(ABC):
    """Settings every method shares: the LoRA adapter, the optimiser, the schedule and what is saved.

    Not used on its own: a job's config is one method's class (``DpoConfig``, ``KtoConfig``, ``SftConfig``)."""

    method: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    epochs: float = setting(3.0, "Passes over the training rows (fractions allowed).")
    # 1e-4, not 5e-4: SmolLM2-135M retuned with DPO on 2 rows for 3 epochs at 5e-4 turned 6 of its 43 right factual
    # answers wrong, several into nonsense ("There are 127.99 Earths."); at 1e-4 it changed none, nor on the demo's
    # 34 rows (README, retune section). Raise --lr when a retune changes nothing.
    learning_rate: float = setting(1e-4, "Peak learning rate (AdamW, decaying linearly to zero).", aliases=("--lr",))
    batch_size: int = setting(8, "Rows per optimiser step on each process (each GPU, or each CPU process).")
    gradient_accumulation_steps: int = setting(1, "Steps whose gradients add up before each optimiser update.")
    max_length: int = setting(512, "Longest prompt plus answer, in tokens; longer rows are truncated.")
    seed: int = setting(0, "Seed for the adapter's initial weights, the row order and weighted sampling.")
    lora_r: int = setting(8, "LoRA rank: the adapter's inner size.")
    lora_alpha: int = setting(16, "LoRA alpha: the adapter's update is scaled by alpha / r.")
    lora_dropout: float = setting(0.0, "Dropout on the adapter's input during training, in [0, 1).")
    lora_target_modules: str = setting("all-linear", "Layers that get an adapter: 'all-linear' or comma-separated "
                                                     "module names such as 'q_proj,v_proj'.")
    logging_steps: int = setting(1, "Write the loss (and rewards) to the job log every N steps.")
    save_steps: int = setting(0, "Save a checkpoint every N steps; 0 saves one at each epoch's end.")
    merge: bool = setting(False, "Also save the base model with the adapter merged in, as its own model version.")
    report_to: tuple[str, ...] = setting((), "Also log to these trackers (tensorboard, mlflow); one that is not "
                                             "installed is skipped with a warning.")
    log_to: str = setting("", "Log the job to an experiment tracker (mlflow, tensorboard or wandb, installed here and "
                              "on the worker): its settings, loss history and lineage ids.", title="Log to tracker")
    device: str = setting("auto", "Where to train: cpu, cuda, cuda:N (one GPU) or auto (a GPU when there is one, each "
                                  "process its own, else the CPU).")
    dtype: str = setting("auto", "Training precision: auto (bfloat16 on a GPU that has it, else float32), bfloat16, "
                                 "float16 (GPU only) or float32.", title="Precision (dtype)")
    qlora: bool = setting(False, "QLoRA: load the base in 4 bits (NF4, bitsandbytes) and train the adapter on it. "
                                 "Needs a CUDA GPU and 'evaltune[qlora]'.", title="QLoRA (4-bit base)")
    # How the worker launches the job, not what each process computes: the accelerate entry takes none of these.
    processes: int = setting(1, "Training processes, one per GPU (CPU processes over gloo without GPUs); above 1 the "
                                "worker runs the job under 'accelerate launch'.", launcher=True)
    deepspeed: str = setting("", "Shard a job of several processes with DeepSpeed ZeRO: zero2 (optimizer states and "
                                 "gradients) or zero3 (also the weights). Needs 'evaltune[deepspeed]'; empty: DDP.",
                             launcher=True, title="DeepSpeed ZeRO stage")
    fsdp: bool = setting(False, "Shard a job of several processes with PyTorch FSDP instead of DDP.", launcher=True,
                          title="FSDP")

    def __post_init__(self) -> None:
        # Written as "not (x > 0)" so that NaN (which number parsers accept) fails too.
        if not (self.learning_rate > 0 and self.epochs > 0):
            raise ValueError(f"learning_rate and epochs must be positive, got {self.learning_rate} and {self.epochs}")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "logging_steps", "lora_r",
                     "lora_alpha"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.save_steps < 0:
            raise ValueError(f"save_steps must be 0 (each epoch) or more, got {self.save_steps}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.log_to not in ("", "mlflow", "tensorboard", "wandb"):
            raise ValueError(f"--log-to '{self.log_to}' is not a tracker: give mlflow, tensorboard or wandb")
        if not self.target_modules():
            raise ValueError("lora_target_modules is empty: give 'all-linear' or module names such as 'q_proj,v_proj'")
        self._check_scale()

    def _check_scale(self) -> None:
        """Device, precision and the multi-process engine: what can be said without looking at the machine (which
        ``retune.launch.engine_problem`` does)."""
        from evaltune.harness.backends.base import BackendError
        from evaltune.harness.backends.registry import LoadOptions

        try:
            LoadOptions(dtype=self.dtype, device=self.device)  # the one check of --device and --dtype values
        except BackendError as error:
            raise ValueError(str(error)) from None
        if self.processes < 1:
            raise ValueError(f"processes must be at least 1, got {self.processes}")
        if self.deepspeed not in ("", *DEEPSPEED_STAGES):
            raise ValueError(f"--deepspeed '{self.deepspeed}' is not a ZeRO stage evaltune ships a config for: give "
                             f"{' or '.join(DEEPSPEED_STAGES)}")
        if self.deepspeed and self.fsdp:
            raise ValueError("--deepspeed and --fsdp are two ways to shard one job: choose one")
        engine = f"--deepspeed {self.deepspeed}" if self.deepspeed else "--fsdp" if self.fsdp else ""
        if engine and self.processes < 2:
            raise ValueError(f"{engine} shards a job over several processes: add --processes N (N of 2 or more, "
                             "one per GPU)")
        if self.processes > 1 and self.device.startswith("cuda:"):
            raise ValueError(f"--device {self.device} names one GPU, but a job of {self.processes} processes takes "
                             "one GPU each: use --device cuda (or CUDA_VISIBLE_DEVICES to choose them)")
        if self.qlora and self.device == "cpu":
            raise ValueError("--qlora needs a CUDA GPU (bitsandbytes' 4-bit layers); drop --device cpu or --qlora")
        if self.merge and (self.fsdp or self.deepspeed == "zero3"):
            raise ValueError(f"--merge is not supported with {engine} (the base's weights are sharded over the "
                             "processes, and PEFT cannot merge into them); train with DDP or --deepspeed zero2 to "
                             "merge")

    def target_modules(self) -> str | list[str]:
        """``lora_target_modules`` as PEFT takes it: the string ``all-linear`` or a list of module names."""
        names = [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]
        return "all-linear" if names == ["all-linear"] else names

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with its method and schema version, that ``load_config`` turns back into this config."""
        values = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        return {"schema_version": SCHEMA_VERSION, "method": self.method, **values}

    @abstractmethod
    def trl_args(self, common: dict[str, Any]) -> Any:
        """The TRL config (``trl.DPOConfig``, ...) for this method, from the arguments every method shares."""

    @abstractmethod
    def trainer_class(self) -> type:
        """The TRL trainer class that trains this method."""


def training_method(cls: type[Config]) -> type[Config]:
    """Register a method's config class under its ``method`` name (the CLI's --method, the app's choice)."""
    if not cls.method or cls.method in CONFIGS:
        raise ValueError(f"{cls.__name__}: a training method needs a new, non-empty name, got {cls.method!r}")
    CONFIGS[cls.method] = cls
    return cls


@dataclass(frozen=True)
class PreferenceConfig(RetuneConfig):
    """Settings of the methods that compare the policy with a reference model (the base, adapter disabled)."""

    beta: float = setting(0.1, "How far the adapter may move from the base model: higher keeps it closer "
                               "(DPO's and KTO's temperature).")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")


@training_method
@dataclass(frozen=True)
class DpoConfig(PreferenceConfig):
    """DPO on preference pairs (prompt, chosen, rejected) with TRL's ``DPOTrainer``."""

    method: ClassVar[str] = "dpo"
    summary: ClassVar[str] = "DPO: preference pairs (prompt, chosen, rejected)"

    sft_weight: float = setting(1.0, "Weight of an added SFT loss on the chosen answer; it keeps very small models "
                                     "from collapsing. 0 trains plain DPO.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sft_weight >= 0:
            raise ValueError(f"sft_weight must be zero or more, got {self.sft_weight}")

    def trl_args(self, common: dict[str, Any]) -> Any:
        import trl

        losses, weights = (["sigmoid", "sft"], [1.0, self.sft_weight]) if self.sft_weight > 0 else (["sigmoid"], [1.0])
        return trl.DPOConfig(beta=self.beta, loss_type=losses, loss_weights=weights, **common)

    def trainer_class(self) -> type:
        import trl

        return trl.DPOTrainer


@training_method
@dataclass(frozen=True)
class KtoConfig(PreferenceConfig):
    """KTO on single answers labelled desirable or not (prompt, completion, label) with TRL's ``KTOTrainer``."""

    method: ClassVar[str] = "kto"
    summary: ClassVar[str] = "KTO: answers labelled good or bad (prompt, completion, label)"

    def trl_args(self, common: dict[str, Any]) -> Any:
        import trl

        return trl.KTOConfig(beta=self.beta, **common)

    def trainer_class(self) -> type:
        import trl

        return trl.KTOTrainer


@training_method
@dataclass(frozen=True)
class SftConfig(RetuneConfig):
    """Supervised fine-tuning on answers to imitate (prompt, completion) with TRL's ``SFTTrainer``."""

    method: ClassVar[str] = "sft"
    summary: ClassVar[str] = "SFT: answers to imitate (prompt, completion)"

    def trl_args(self, common: dict[str, Any]) -> Any:
        import trl

        return trl.SFTConfig(**common)

    def trainer_class(self) -> type:
        import trl

        return trl.SFTTrainer


METHODS = tuple(CONFIGS)  # after the last @training_method class: the CLI, app and entry point offer these


def config_class(method: str) -> type[RetuneConfig]:
    """The config class of a training method (``dpo``, ``kto``, ``sft``)."""
    if method not in CONFIGS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[method]


def make_config(method: str, **values: Any) -> RetuneConfig:
    """The ``method``'s config with ``values`` set and every other field at its default."""
    return config_class(method)(**values)


def config_from_options(method: str, values: Mapping[str, Any]) -> RetuneConfig:
    """The ``method``'s config from a surface's option values (every method's fields): the method's own are used,
    the others' left out (the surface tells its user when one of those was set)."""
    cls = config_class(method)
    own: dict[str, Any] = {}
    for item in fields(cls):
        if item.name in values:
            value = values[item.name]
            own[item.name] = tuple(value) if isinstance(value, list) else value  # argparse gives lists
    return cls(**own)


# ---- The option list the command line, the app form and the accelerate entry are generated from ----------------


@dataclass(frozen=True)
class OptionField:
    """One config field as a user-facing option: ``--flag``, its type, default and help, and the methods it is for."""

    name: str
    kind: type  # int, float, bool, str or tuple (of str)
    default: Any
    help: str
    methods: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    launcher: bool = False  # how the job is launched (processes, sharding), not what each process trains
    title: str = ""  # the app form's label, when the name capitalised is not it ("QLoRA", not "Qlora")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()

    def help_for(self, methods: Iterable[str]) -> str:
        """The help, naming the methods the option is for when that is not all of ``methods``."""
        missing = set(methods) - set(self.methods)
        return self.help + (f" ({', '.join(self.methods)} only)" if missing else "")


def _kind(annotation: Any) -> type:
    if annotation in (int, float, bool, str):
        return annotation
    if getattr(annotation, "__origin__", None) is tuple:
        return tuple
    raise TypeError(f"config fields are int, float, bool, str or tuple[str, ...], not {annotation}")


def option_fields(classes: Iterable[type[RetuneConfig]] | None = None) -> list[OptionField]:
    """The fields of ``classes`` (default: every method) in declaration order, each once, with the methods that
    have it. A field two methods declare differently is an error: one option cannot have two defaults."""
    found: dict[str, OptionField] = {}
    for cls in classes if classes is not None else CONFIGS.values():
        hints = get_type_hints(cls)
        for item in fields(cls):
            option = OptionField(item.name, _kind(hints[item.name]), _default(item), item.metadata["help"],
                                 (cls.method,), tuple(item.metadata.get("aliases", ())),
                                 bool(item.metadata.get("launcher", False)), str(item.metadata.get("title", "")))
            seen = found.get(item.name)
            if seen is None:
                found[item.name] = option
            elif (seen.kind, seen.default, seen.help) != (option.kind, option.default, option.help):
                raise TypeError(f"{cls.__name__}.{item.name} differs from the field of the same name in "
                                f"{', '.join(seen.methods)}: declare it once, in a shared base class")
            else:
                found[item.name] = replace(seen, methods=(*seen.methods, cls.method))
    return list(found.values())


def _default(item: Field[Any]) -> Any:
    if item.default is MISSING:
        raise TypeError(f"config field {item.name} needs a default")
    return item.default


# ---- Stored job configs, any schema version ---------------------------------------------------------------------


def load_config(data: Mapping[str, Any], method: str | None = None) -> tuple[RetuneConfig, list[str]]:
    """A stored job config (any schema version) as its method's config, and a note for each stored key dropped.

    ``method`` is the job's method, used when the stored config does not name one. A known field with a value of
    the wrong type, or one its config refuses, raises ``ValueError`` naming the field."""
    values = dict(data)
    version = values.pop("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"stored retune config: schema_version must be a whole number from 1, got {version!r}")
    cls = config_class(str(values.pop("method", method or "dpo")))
    if version == 1:
        values = _from_version_1(values, cls)
    known = {item.name: kind for item, kind in zip(fields(cls), _kinds(cls), strict=True)}
    notes = []
    # An unknown key is dropped with a note in the job log, not refused: workers of several evaltune versions may
    # share one queue, so a config written by a newer version (a new field) or naming a field since removed must
    # still run a job whose known fields are valid. The note says which setting was not applied, and why.
    for key in sorted(set(values) - set(known)):
        origin = "a newer" if version > SCHEMA_VERSION else "an older"
        notes.append(f"the stored setting {key}={values.pop(key)!r} was ignored: {cls.method} configs of schema "
                     f"version {SCHEMA_VERSION} have no such field (written by {origin} evaltune?)")
    return cls(**{key: _typed(key, known[key], value) for key, value in values.items()}), notes


def _kinds(cls: type[RetuneConfig]) -> list[type]:
    hints = get_type_hints(cls)
    return [_kind(hints[item.name]) for item in fields(cls)]


def _from_version_1(values: dict[str, Any], cls: type[RetuneConfig]) -> dict[str, Any]:
    """Version 1 nested LoRA under ``lora`` and stored ``beta`` and ``sft_weight`` for every method."""
    lora = values.pop("lora", None) or {}
    if not isinstance(lora, Mapping):
        raise ValueError(f"stored retune config: lora must be an object, got {lora!r}")
    for key, value in lora.items():
        values[f"lora_{key}"] = ",".join(value) if key == "target_modules" and isinstance(value, list) else value
    own = {item.name for item in fields(cls)}
    return {key: value for key, value in values.items() if key in own or key not in ("beta", "sft_weight")}


def _typed(name: str, kind: type, value: Any) -> Any:
    """The stored value as the field's type; a value of another type is an error naming the field."""
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if kind in (int, bool, str) and type(value) is kind:
        return value
    wanted = {int: "a whole number", float: "a number", bool: "true or false", str: "text",
              tuple: "a list of names"}[kind]
    raise ValueError(f"stored retune config: {name} must be {wanted}, got {value!r}")
