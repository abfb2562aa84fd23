"""LoRA training with TRL: ``DPOTrainer``, ``KTOTrainer`` or ``SFTTrainer`` with a PEFT ``LoraConfig``.

No separate reference model: with a PEFT adapter and ``ref_model=None`` TRL uses the base with the adapter
disabled. Checkpoints go under ``output_dir/checkpoints`` and a rerun resumes from the last one. Loss, reward
accuracies and margins go to the ``log`` callback (the job log), and to tensorboard / mlflow when asked for
and installed.

The same function trains in every process of an ``accelerate launch`` (``retune.launch``): the Trainer takes DDP,
DeepSpeed or FSDP from the launch. ``config.dtype`` picks the precision (bf16 mixed precision on GPUs that have it
when ``auto``) and ``config.qlora`` loads the base in 4 bits through bitsandbytes (QLoRA, CUDA only).
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltune.progress import Progress
from evaltune.retune.config import RetuneConfig

Log = Callable[[str], None]
MIN_ROWS = 16  # below this, a retune mostly memorises noise: warn
SIMILAR = 0.9  # chosen and rejected this similar (difflib ratio) teach almost nothing


@dataclass
class TrainResult:
    adapter_dir: Path
    merged_dir: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False  # cancelled through ``should_stop``
    world_size: int = 1  # processes that trained it (``accelerate launch``)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(m.get("content", "")) for m in value)
    return str(value or "")


def data_warnings(records: Sequence[dict[str, Any]], method: str) -> list[str]:
    """Guard-rails on the data: too few rows, and pairs whose chosen and rejected are near-identical."""
    found = []
    if len(records) < MIN_ROWS:
        found.append(f"only {len(records)} training rows (fewer than {MIN_ROWS}): expect overfitting")
    if method == "dpo":
        similar = sum(
            difflib.SequenceMatcher(None, _text(r["chosen"]), _text(r["rejected"])).ratio() >= SIMILAR
            for r in records
        )
        if similar:
            found.append(f"{similar} of {len(records)} pairs have near-identical chosen and rejected answers")
    if method == "kto" and records and len({bool(r["label"]) for r in records}) < 2:
        found.append("all KTO rows have the same label: KTO needs desirable and undesirable examples")
    return found


def _report_to(config: RetuneConfig, log: Log) -> list[str]:
    wanted = []
    for name in config.report_to:
        module = {"tensorboard": "tensorboard", "mlflow": "mlflow"}.get(name, name)
        if importlib.util.find_spec(module) is None:
            log(f"warning: report_to {name!r} skipped: the {module} package is not installed")
        else:
            wanted.append(name)
    return wanted or ["none"]


def on_gpu(config: RetuneConfig) -> bool:
    """Whether training runs on a CUDA GPU: ``device`` is not cpu and this process sees one."""
    import torch

    return config.device != "cpu" and torch.cuda.is_available()


def precision(config: RetuneConfig) -> str:
    """The precision training runs in: ``config.dtype``, with ``auto`` as bfloat16 on a GPU that supports it (the
    usual LoRA setting there) and float32 elsewhere (a CPU, or an older GPU)."""
    import torch

    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if on_gpu(config) and torch.cuda.is_bf16_supported() else "float32"


def _trainer_args(config: RetuneConfig, output_dir: Path, log: Log) -> Any:
    gpu, dtype = on_gpu(config), precision(config)
    common: dict[str, Any] = dict(
        output_dir=str(output_dir / "checkpoints"), learning_rate=config.learning_rate,
        num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, seed=config.seed, data_seed=config.seed,
        logging_steps=config.logging_steps, max_length=config.max_length, report_to=_report_to(config, log),
        use_cpu=not gpu, bf16=dtype == "bfloat16", fp16=dtype == "float16",
        # transformers 5.25 renamed gradient_checkpointing (TRL's configs default it to True): naming the new
        # field keeps it off without the old name's FutureWarning.
        activation_checkpointing=False,
        save_strategy="steps" if config.save_steps else "epoch", save_steps=config.save_steps or 500,
        save_total_limit=2, disable_tqdm=True, remove_unused_columns=False,
    )
    return config.trl_args(common)


def _lora(config: RetuneConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules(), task_type="CAUSAL_LM")


class _JobCallback:
    """Forwards Trainer logs to the job log, stops on cancel, warns when rewards separate too early, and moves a
    progress bar per training step on a terminal (the Trainer's own tqdm bar is off: ``disable_tqdm``)."""

    def __init__(self, log: Log, should_stop: Callable[[], bool], history: list[dict[str, float]],
                 warnings: list[str]) -> None:
        self.log, self.should_stop, self.history, self.warnings = log, should_stop, history, warnings
        self.stopped = False
        self.progress: Progress | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.is_world_process_zero:  # one bar, not one per process of a distributed run
            self.progress = Progress("training", total=state.max_steps, unit="step")
            self.progress.update_to(state.global_step, state.max_steps)  # a resumed run starts part-way

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        numbers["step"] = float(state.global_step)
        self.history.append(numbers)
        values = ", ".join(f"{key} {value:.4g}" for key, value in numbers.items() if key != "step")
        self.log(f"step {state.global_step}{f' of {state.max_steps}' if state.max_steps else ''}: {values}")
        accuracy = numbers.get("rewards/accuracies")
        early = state.max_steps and state.global_step <= max(1, state.max_steps // 4)
        if accuracy == 1.0 and early and not any("accuracy" in w for w in self.warnings):
            message = (f"reward accuracy reached 1.0 at step {state.global_step} of {state.max_steps}: "
                       "the pairs may be too easy or the learning rate too high")
            self.warnings.append(message)
            self.log("warning: " + message)

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if self.progress is not None:
            self.progress.update_to(state.global_step, state.max_steps)
        if self.should_stop():
            self.stopped = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.close_progress()

    def close_progress(self) -> None:
        """Take the bar off the terminal (also when training stopped on an error)."""
        if self.progress is not None:
            self.progress.close()


def _callback(log: Log, should_stop: Callable[[], bool], history: list[dict[str, float]],
              warnings: list[str]) -> Any:
    from transformers import TrainerCallback

    # TrainerCallback's hooks are plain methods; mixing it in keeps _JobCallback importable without torch.
    cls = type("JobCallback", (_JobCallback, TrainerCallback), {})
    return cls(log, should_stop, history, warnings)


@contextmanager
def _without_libraries_deprecations() -> Iterator[None]:
    """PEFT 0.21 (building the adapter) and TRL 1.16 (at each step, around the reference pass) read the model's
    ``is_gradient_checkpointing``, which transformers 5.25 deprecates with a FutureWarning: not our call, and
    nothing a user can change, so it is kept out of the job's output. Our own arguments use the current names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


WEIGHT = "weight"  # the optional column of a training row: how often to draw it, relative to the others


def row_weights(records: Sequence[dict[str, Any]]) -> list[float] | None:
    """Each row's ``weight`` (1 where absent), or None when every row weighs the same (plain shuffling then).

    Raises ``ValueError`` naming the row when a weight is negative or not a number, or when all are 0."""
    weights = []
    for number, record in enumerate(records, start=1):
        weight = record.get(WEIGHT, 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < math.inf:
            raise ValueError(f"training row {number}: weight must be a number from 0 up, got {weight!r}")
        weights.append(float(weight))
    if not any(weights):
        raise ValueError("every training row has weight 0, so none can be drawn; rebuild the dataset without "
                         "--weight-by-agreement")
    return weights if len(set(weights)) > 1 else None


def _weighted_sampler(weights: list[float], seed: int) -> Any:
    import torch
    from torch.utils.data import WeightedRandomSampler

    def set_epoch(self: Any, epoch: int) -> None:
        # The Trainer calls this before each epoch. Seeding by epoch makes every process of a distributed run draw
        # the same sequence (accelerate then gives each process its share of it), and a resumed run redraw it.
        self.generator.manual_seed(seed + epoch)

    cls = type("EpochSeededWeightedSampler", (WeightedRandomSampler,), {"set_epoch": set_epoch})
    sampler = cls(weights, num_samples=len(weights), replacement=True, generator=torch.Generator())
    sampler.set_epoch(0)
    return sampler


class _DrawsRowsByWeight:
    """Mixed into a TRL trainer: each epoch draws as many rows as the dataset holds, with replacement, each in
    proportion to its ``weight`` column, instead of shuffling. The weights are read from the dataset the trainer
    prepared, so they stay with their rows when TRL drops a row (one whose prompt fills ``max_length``)."""

    train_dataset: Any
    args: Any

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:  # transformers 5.25's signature
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if WEIGHT not in dataset.column_names:
            raise RuntimeError(f"the prepared training rows lost their {WEIGHT!r} column; weighted sampling needs it")
        return _weighted_sampler([float(w) for w in dataset[WEIGHT]], self.args.seed)


def _trainer(config: RetuneConfig, base: str, records: Sequence[dict[str, Any]], args: Any, callbacks: list[Any],
             weighted: bool) -> Any:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _base_model(config, base)
    trainer_class = config.trainer_class()
    if weighted:
        trainer_class = type(f"Weighted{trainer_class.__name__}", (_DrawsRowsByWeight, trainer_class), {})
    else:
        records = [{k: v for k, v in record.items() if k != WEIGHT} for record in records]
    with _without_libraries_deprecations():
        trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(list(records)),
                                processing_class=tokenizer, peft_config=_lora(config), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our callback writes the same numbers to the job log
    return trainer


def _base_model(config: RetuneConfig, base: str) -> Any:
    """The base model in the training precision, or (``qlora``) quantised to 4-bit NF4 and made ready for k-bit
    training as PEFT's QLoRA guide does; the adapter on top stays in the compute precision."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, precision(config))
    # transformers 5.25 turns hub kernels on by default, and model.train() on a GPU then fetches them from the
    # hub: offline, training failed before its first step.
    if not config.qlora:
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_kernels=False)
    from accelerate import PartialState
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    # The 4-bit weights are packed into the storage dtype; PEFT's FSDP/ZeRO-3 QLoRA guides load the model in that
    # same dtype, and advise float32 storage under float16 mixed precision.
    storage = torch.float32 if dtype == torch.float16 else dtype
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                                      bnb_4bit_use_double_quant=True, bnb_4bit_quant_storage=storage)
    # DDP: each process holds a whole copy on its own GPU. FSDP and ZeRO-3 place the shards themselves.
    placement = None if (config.fsdp or config.deepspeed == "zero3") else {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(base, quantization_config=quantization, dtype=storage,
                                                 device_map=placement, use_kernels=False)
    # Gradient checkpointing stays off, as for every job here (``activation_checkpointing=False``).
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def trainer_for(
    base: str, records: Sequence[dict[str, Any]], config: RetuneConfig, output_dir: Path, log: Log = print,
    callbacks: Sequence[Any] = (),
) -> Any:
    """The TRL trainer ``train`` runs, ready to train: the model loaded from the folder ``base``, the rows
    prepared, checkpoints set to go under ``output_dir/checkpoints``, and rows drawn by weight when they carry
    different ``weight``s. ``train`` is what most callers want; this is for looking at what it would do."""
    weights = row_weights(records)
    if weights is not None:
        log(f"drawing rows in proportion to their weight ({min(weights):.2f} to {max(weights):.2f}), with replacement")
    args = _trainer_args(config, output_dir, log)
    return _trainer(config, base, records, args, list(callbacks), weighted=weights is not None)


def train(
    base: str,
    records: Sequence[dict[str, Any]],
    config: RetuneConfig,
    output_dir: Path,
    log: Log = print,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train a LoRA adapter on ``records`` (TRL columns for ``config.method``) from the model folder ``base``.

    Rows may carry a ``weight`` (``evaltune data build --weight-by-agreement``): rows are then drawn in proportion
    to it, with replacement, instead of shuffled; TRL's losses have no per-row weight, so sampling carries it.
    The adapter (safetensors + config) lands in ``output_dir/adapter`` and, when ``config.merge``, the merged
    model in ``output_dir/merged``. A rerun with the same ``output_dir`` resumes from the last checkpoint."""
    from transformers.trainer_utils import get_last_checkpoint

    if not records:
        raise ValueError("no training rows: build a dataset with rows in its train split first")
    result = TrainResult(output_dir / "adapter", None)
    for message in data_warnings(records, config.method):
        result.warnings.append(message)
        log("warning: " + message)
    callback = _callback(log, should_stop, result.history, result.warnings)
    _choose_gpu(config)
    trainer = trainer_for(base, records, config, output_dir, log, [callback])
    checkpoints = Path(trainer.args.output_dir)
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume:
        log(f"resuming from {resume}")
    try:
        with _without_libraries_deprecations():
            trainer.train(resume_from_checkpoint=resume)
    finally:
        callback.close_progress()
    result.stopped, result.world_size = callback.stopped, trainer.args.world_size
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        # The weights are sharded over the processes: every one takes part in gathering them (FSDP's full state
        # dict, ZeRO-3's 16-bit weights) and the main process writes the adapter.
        trainer.save_model(str(result.adapter_dir))
    elif trainer.accelerator.is_main_process:
        trainer.model.save_pretrained(str(result.adapter_dir), safe_serialization=True)
    if config.merge and trainer.accelerator.is_main_process:
        result.merged_dir = _save_merged(trainer, base, output_dir / "merged")
    return result


def _choose_gpu(config: RetuneConfig) -> None:
    """``--device cuda:N`` on one process: make GPU N the current one, where the Trainer puts the model. (Several
    processes take one GPU each from the launch; the config refuses cuda:N there.)"""
    if config.device.startswith("cuda:") and on_gpu(config):
        import torch

        torch.cuda.set_device(int(config.device.split(":")[1]))


def _save_merged(trainer: Any, base: str, folder: Path) -> Path:
    from transformers import AutoTokenizer

    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(folder), safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(str(folder))
    return folder
