"""generator/loss.py: the chunked cross-entropy equals torch's on logits, value and gradients, and keeps no logits."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from t2v.generator.data import IGNORE
from t2v.generator.loss import linear_cross_entropy


def reference(hidden, weight, labels):
    return F.cross_entropy((hidden @ weight.T).float(), labels, ignore_index=IGNORE)


@pytest.mark.parametrize("chunk", [3, 7, 1000])
def test_equals_cross_entropy_on_full_logits(chunk):
    torch.manual_seed(0)
    hidden = torch.randn(20, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    labels = torch.randint(0, 50, (20,))
    labels[[2, 5, 11]] = IGNORE
    ours = linear_cross_entropy(hidden, weight, labels, IGNORE, chunk)
    (3 * ours).backward()  # a scaled loss: the stored gradients follow the output's gradient
    ours_grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    theirs = reference(hidden, weight, labels)
    (3 * theirs).backward()
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(ours_grads[0], hidden.grad, atol=1e-6)
    assert torch.allclose(ours_grads[1], weight.grad, atol=1e-6)


def test_bfloat16_inputs_give_an_fp32_loss_close_to_fp32():
    torch.manual_seed(1)
    hidden, weight = torch.randn(64, 32), torch.randn(100, 32) * 0.1
    labels = torch.randint(0, 100, (64,))
    exact = reference(hidden, weight, labels)
    low = linear_cross_entropy(hidden.bfloat16().requires_grad_(), weight.bfloat16().requires_grad_(), labels)
    assert low.dtype == torch.float32 and abs(low.item() - exact.item()) < 2e-2
    low.backward()


def test_no_grad_computes_only_the_loss_and_all_ignored_is_finite():
    hidden, weight = torch.randn(4, 8), torch.randn(10, 8)
    with torch.no_grad():
        assert torch.isclose(linear_cross_entropy(hidden, weight, torch.tensor([1, 2, 3, 4])),
                             reference(hidden, weight, torch.tensor([1, 2, 3, 4])))
    assert linear_cross_entropy(hidden, weight, torch.full((4,), IGNORE)).item() == 0.0


def test_the_graph_keeps_no_logits():
    """What autograd saves for backward is the two gradients (N×H and C×H), never the N×C logits."""
    hidden = torch.randn(256, 8, requires_grad=True)
    weight = torch.randn(4096, 8, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        linear_cross_entropy(hidden, weight, torch.randint(0, 4096, (256,)), chunk=64)
    assert max(saved) <= 4096 * 8 < 256 * 4096
