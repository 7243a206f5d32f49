"""The training loss: cross-entropy over the video codes, from the last hidden states, a chunk of ids at a time.

`output @ weight.T` over a 16k–64k codebook is the largest tensor of a training step: in bf16 and again in fp32 for
the loss it is about 0.77 MB per id at 64k codes, twice the B preset's transformer activations. Here no full
logits tensor ever exists: each chunk of ids computes its logits in fp32, its loss and at once its gradients
(with respect to the hidden states and the weight; the fused linear cross-entropy of Liger-Kernel and Apple's
cut-cross-entropy, written here in plain torch so it runs on every device), and keeps only those gradients for the
backward pass: memory is chunk × codebook instead of ids × codebook, and nothing is recomputed. Under `no_grad`
(evaluation) only the loss is computed. The mean is over the labelled ids, as `F.cross_entropy(ignore_index=…)`.
"""
from __future__ import annotations

import torch

CHUNK = 1024  # ids per chunk: at 64k codes 0.25 GB of fp32 logits, matmuls of 50 GFLOP at hidden 768


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int,
                chunk: int) -> torch.Tensor:
        valid = labels != ignore_index
        count = valid.sum().clamp(min=1).float()  # the host never waits for it
        needs = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_hidden = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
            if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            part, target = hidden[start: start + chunk], labels[start: start + chunk]
            keep = valid[start: start + chunk]
            logits = (part @ weight.T).float()  # (n, C): one chunk, in fp32 for the softmax
            safe = torch.where(keep, target, 0)
            picked = logits.gather(1, safe[:, None])[:, 0]
            top = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(top).exp_()  # in place: the chunk's one (n, C) fp32 tensor
            norm = probs.sum(dim=-1, keepdim=True)
            total += ((norm.log()[:, 0] + top[:, 0] - picked) * keep).sum()
            if needs:
                grad = probs.div_(norm)  # d loss / d logits = (softmax - one-hot) / count
                grad[torch.arange(len(safe), device=grad.device), safe] -= 1
                grad *= (keep / count)[:, None]
                if grad_hidden is not None:
                    grad_hidden[start: start + chunk] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
                if grad_weight is not None:
                    grad_weight += grad.T @ part.float()
        ctx.save_for_backward(grad_hidden if grad_hidden is not None else torch.empty(0),
                              grad_weight if grad_weight is not None else torch.empty(0))
        ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden = grad_hidden * grad_output.to(grad_hidden.dtype) if ctx.needs_input_grad[0] else None
        weight = (grad_weight * grad_output).to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
        return hidden, weight, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                         chunk: int = CHUNK) -> torch.Tensor:
    """Mean cross-entropy of `labels` (N,) under logits `hidden` (N, H) @ `weight` (C, H).T over the labels that
    are not `ignore_index`, without materialising the (N, C) logits (see the module docstring)."""
    return _LinearCrossEntropy.apply(hidden, weight, labels, ignore_index, chunk)
