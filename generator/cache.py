"""The explicit KV cache passed into the generator's forward.

Keys and values of every layer live in buffers preallocated for `capacity` ids, (B, kv_heads, capacity, head_dim):
appending a token writes in place (no concatenation per step) and attention reads the filled prefix.
The attention layers of `transformers` call `update(keys, values, layer)` once per layer; the model's forward
calls `advance(n)` once all layers have written the `n` new ids, so the cache holds no hidden decoding state
beyond `length`.

For videos longer than the cache, `drop` removes a span (the oldest latent frame) by moving the later ids down,
and `rotate_keys` turns cached keys by a rotary (cos, sin): the sampler uses both to roll its window.
"""
from __future__ import annotations

import torch
from transformers.models.qwen2_vl.modeling_qwen2_vl import rotate_half


class KVCache:
    """Per-layer key/value buffers for `capacity` ids; the first `length` are filled."""

    def __init__(self, num_layers: int, batch: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        shape = (batch, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.capacity = capacity
        self.length = 0

    @property
    def batch(self) -> int:
        return self.keys[0].shape[0]

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new ids' keys/values (B, heads, n, d) after the filled ones; return all keys/values so far."""
        start, end = self.length, self.length + key.shape[2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} ids do not fit its capacity of {self.capacity}")
        self.keys[layer_idx][:, :, start:end] = key
        self.values[layer_idx][:, :, start:end] = value
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def advance(self, n: int) -> None:
        """Mark `n` more ids as filled (called by the model after every layer has written them)."""
        self.length += n

    def truncate(self, length: int) -> None:
        """Forget every id from `length` on."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} ids to {length}")
        self.length = length

    def drop(self, start: int, count: int) -> None:
        """Remove ids start … start+count-1; the ids after them move down (in place) and keep their keys as they
        are."""
        if start < 0 or count < 0 or start + count > self.length:
            raise ValueError(f"cannot drop ids {start}…{start + count - 1} from a cache of {self.length}")
        end = self.length
        for buffers in (self.keys, self.values):
            for buffer in buffers:
                buffer[:, :, start: end - count] = buffer[:, :, start + count: end].clone()
        self.length -= count

    def rotate_keys(self, start: int, cos: torch.Tensor, sin: torch.Tensor) -> None:
        """Rotate the keys of ids start … length-1 by a rotary (cos, sin) of shape (head_dim,): rotations compose,
        so keys at position p become keys at p + the rotation's offset, exactly as if computed there. The turn is
        computed in fp32 whatever the cache's dtype (bf16 keys are rounded once, when written back)."""
        cos, sin = cos.float(), sin.float()
        for keys in self.keys:
            span = keys[:, :, start: self.length]
            exact = span.float()
            span.copy_(exact * cos + rotate_half(exact) * sin)  # the attention's own rotary formula

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length
