"""A KV cache that writes each new token into room set aside for it, instead of copying the whole cache.

transformers' ``DynamicLayer`` grows by ``torch.cat`` at every step, which copies every cached key and value
of the batch once per generated token: on the default model at 32 rows and ~110 cached tokens that copy was a
quarter of a decoding step. ``reserve`` swaps each such layer for a ``RoomyLayer`` whose buffer already has
room for the tokens still to come; a step then writes one position and hands attention a view.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

# transformers 5.25 renamed a model's ``past_key_values`` (argument and output field) to ``cache``; the old
# name still works there but warns, and goes in 5.40.
CACHE_ARG = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def cache_of(output: Any) -> Any:
    """The KV cache of a model's forward output, under whichever name this transformers gives it."""
    return getattr(output, CACHE_ARG)


class RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` over a preallocated buffer: ``keys``/``values`` are views of its filled part."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self.length = keys.shape[-2]
        self._key_buffer = _with_room(keys, room)
        self._value_buffer = _with_room(values, room)
        self._point_at_filled()

    @classmethod
    def over(cls, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> RoomyLayer:
        """A layer that adopts buffers (no copy) whose first ``length`` positions are filled."""
        layer = cls.__new__(cls)
        DynamicLayer.__init__(layer)
        layer.dtype, layer.device = key_buffer.dtype, key_buffer.device
        layer.is_initialized = True
        layer.length = length
        layer._key_buffer, layer._value_buffer = key_buffer, value_buffer
        layer._point_at_filled()
        return layer

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[-2]
        if self.length + new > self._key_buffer.shape[-2]:  # more than was reserved: grow like DynamicLayer would
            self._key_buffer = _with_room(self._key_buffer[..., : self.length, :], new)
            self._value_buffer = _with_room(self._value_buffer[..., : self.length, :], new)
        self._key_buffer[..., self.length : self.length + new, :] = key_states
        self._value_buffer[..., self.length : self.length + new, :] = value_states
        self.length += new
        self._point_at_filled()
        return self._key_buffer[..., : self.length, :], self._value_buffer[..., : self.length, :]

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices``, in that order. When every row that moves comes from past the new batch
        size (``kept_rows`` orders them so), those rows are copied into the places they take and the buffer is
        cut short: a step where a few rows finish copies those few rows, not the whole cache."""
        order = indices.tolist()
        moves = [(place, row) for place, row in enumerate(order) if place != row]
        if len(order) > self._key_buffer.shape[0] or any(row < len(order) for _, row in moves):
            self._key_buffer = self._key_buffer[indices, ...]
            self._value_buffer = self._value_buffer[indices, ...]
        else:
            if moves:
                places, rows = (torch.tensor(column, device=indices.device) for column in zip(*moves, strict=True))
                self._key_buffer[places] = self._key_buffer[rows]
                self._value_buffer[places] = self._value_buffer[rows]
            self._key_buffer = self._key_buffer[: len(order)]
            self._value_buffer = self._value_buffer[: len(order)]
        self._point_at_filled()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
        self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
        self._point_at_filled()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove < 0:
            self.length = max(self.length + tokens_to_remove, 0)
            self._point_at_filled()

    def _point_at_filled(self) -> None:
        self.keys = self._key_buffer[..., : self.length, :]
        self.values = self._value_buffer[..., : self.length, :]


def kept_rows(finished: list[bool]) -> list[int]:
    """The batch rows that go on, ordered so that each finished row's place is taken by a row from the end
    of the batch: the fewest rows move (``RoomyLayer.batch_select_indices`` then copies only those)."""
    kept = [row for row, done in enumerate(finished) if not done]
    order = list(range(len(kept)))
    holes = [row for row in order if finished[row]]
    for hole, row in zip(holes, (row for row in kept if row >= len(kept)), strict=True):
        order[hole] = row
    return order


def reserve(cache: Any, room: int) -> None:
    """Give every plain dynamic layer of ``cache`` room for ``room`` more positions (other layer kinds, such
    as sliding windows, are left as they are)."""
    layers = getattr(cache, "layers", None)
    if layers is None or room <= 0:
        return
    for index, layer in enumerate(layers):
        keys, values = layer.keys, layer.values
        if type(layer) is DynamicLayer and keys is not None and values is not None and keys.numel():
            layers[index] = RoomyLayer(keys, values, room)


def _with_room(tensor: torch.Tensor, room: int) -> torch.Tensor:
    shape = list(tensor.shape)
    filled = shape[-2]
    shape[-2] = filled + room
    buffer = tensor.new_empty(shape)
    buffer[..., :filled, :] = tensor
    return buffer
