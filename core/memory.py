"""Memory arithmetic shared by the trainers' estimates (generator/memory.py, tokenizer/memory.py): the bytes autograd
saves for the backward, measured (on real tensors, or on fake ones: shapes and dtypes without data, so a forward at
full size costs nothing); CUDA's bf16 autocast reproduced on a CPU; GiB and plain-text tables for the dry runs."""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

GIB = 2**30
# AdamW in fp32 without mixed precision: the parameter, its gradient, and the two moments (4 bytes each).
ADAMW_FP32_BYTES = 16


def storage_key(tensor: torch.Tensor) -> int:
    """One number per storage, shared by its views; real and fake tensors alike (a fake one has no data pointer)."""
    return tensor.untyped_storage()._cdata


class SavedTensors:
    """The bytes autograd keeps for the backward of what runs while this is entered
    (`torch.autograd.graph.saved_tensors_hooks`): every storage a saved tensor still holds, counted once (views of
    one tensor share it), the `exclude`d tensors' (parameters: model state, not activations) not at all. A tensor
    saved by a branch of the graph that is dropped again (one no loss depends on) is freed with it and not counted."""

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self.excluded = {storage_key(tensor) for tensor in exclude}
        self.saved: list[weakref.ref] = []  # the saved tensors, alive while the graph holds them
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        if storage_key(tensor) not in self.excluded:
            self.saved.append(weakref.ref(tensor))
        return tensor

    @property
    def total(self) -> int:
        storages: dict[int, int] = {}
        for ref in self.saved:
            tensor = ref()
            if tensor is not None:
                storages.setdefault(storage_key(tensor), tensor.untyped_storage().nbytes())
        return sum(storages.values())

    def __enter__(self) -> "SavedTensors":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


@contextlib.contextmanager
def module_shares(saved: SavedTensors, modules: Iterable[nn.Module]) -> Iterator[list[list[int]]]:
    """A context in which each forward of `modules` records [bytes newly saved during its forward, bytes of its
    input] (the last forward of each); it gives the list of those pairs, filled in as the body runs."""
    shares: list[list[int]] = []
    handles = []
    for module in modules:
        share = [0, 0]
        shares.append(share)

        def before(_module, args, share=share):
            share[0], share[1] = -saved.total, args[0].untyped_storage().nbytes()

        def after(_module, _args, _output, share=share):
            share[0] += saved.total

        handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield shares
    finally:
        for handle in handles:
            handle.remove()


def make_fake(modules: Iterable[nn.Module], mode: "torch._subclasses.fake_tensor.FakeTensorMode") -> None:
    """Replace every parameter and buffer of `modules` (built as usual, on the CPU) by a fake tensor of `mode`, in
    place: the modules then run on fake inputs without touching data."""
    for module in modules:
        for sub in module.modules():
            for name, parameter in sub._parameters.items():
                if parameter is not None:
                    sub._parameters[name] = nn.Parameter(mode.from_tensor(parameter), parameter.requires_grad)
            for name, buffer in sub._buffers.items():
                if buffer is not None:
                    sub._buffers[name] = mode.from_tensor(buffer)


# CUDA autocast's float32 list (the torch.amp "autocast op reference": "CUDA Ops that can autocast to float32"), as
# far as these models call them, where CPU autocast keeps the input's dtype instead (normalisations, softmax,
# powers and reductions). Both put convolutions and matmuls in the lower precision, and both leave the other ops
# (SiLU, interpolation, additions) in the dtype of their inputs.
_CUDA_FLOAT32 = {
    F.group_norm, torch.group_norm, F.layer_norm, torch.layer_norm, F.softmax, torch.softmax, torch.Tensor.softmax,
    F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax, F.normalize, torch.norm, torch.Tensor.norm,
    torch.pow, torch.Tensor.pow, torch.Tensor.__pow__, torch.exp, torch.Tensor.exp, torch.log, torch.Tensor.log,
    torch.rsqrt, torch.Tensor.rsqrt, torch.sum, torch.Tensor.sum, torch.prod, torch.cumsum, torch.cumprod,
}


class _CudaFloat32Policy(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CUDA_FLOAT32 and torch.is_autocast_enabled("cpu"):
            def widen(value):
                return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
            args, kwargs = tuple(map(widen, args)), {name: widen(value) for name, value in kwargs.items()}
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_autocast_on_cpu(dtype: torch.dtype = torch.bfloat16) -> Iterator[None]:
    """CPU autocast with CUDA's float32 policy on top: CPU tensors (fake ones, for a measurement) get the dtypes a
    CUDA autocast region would give them. A region the code disables (`torch.autocast(…, enabled=False)`) stays
    disabled."""
    with torch.autocast("cpu", dtype=dtype), _CudaFloat32Policy():
        yield


def gib(count: float) -> str:
    """Bytes as GiB: two decimals, or three significant digits below 0.1 GiB."""
    value = count / GIB
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.3g}"


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned, columns two spaces apart."""
    cells = [header, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [indent + "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                                for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in cells]
    return "\n".join(lines)
