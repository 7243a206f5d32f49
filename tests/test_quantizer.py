"""tokenizer/quantizer.py: the FSQ / LFQ / VQ interface and codebook statistics."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import QUANTIZERS
from t2v.tokenizer.config import QuantizerConfig
from t2v.tokenizer.quantizer import Quantizer, codebook_stats, swap_codes


def make_quantizer(kind: str) -> Quantizer:
    torch.manual_seed(0)
    return Quantizer(QuantizerConfig(kind, fsq_levels=(8, 5, 5), lfq_bits=5, lfq_commitment=0.25, lfq_entropy=0.1,
                                     vq_codebook_size=16, vq_dim=3, vq_decay=0.99, vq_commitment=0.25,
                                     vq_dead_code_threshold=0.0))


def test_codebook_stats_known_histograms():
    stats = codebook_stats(torch.tensor([5, 5, 0, 0]))
    assert stats["codebook_usage"] == pytest.approx(0.5)
    assert stats["perplexity"] == pytest.approx(2.0)
    stats = codebook_stats(torch.tensor([7, 7, 7, 7, 7, 7, 7, 7]))
    assert stats == pytest.approx({"codebook_usage": 1.0, "perplexity": 8.0})
    counts = torch.tensor([3, 1, 0, 0, 0])
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    stats = codebook_stats(counts)
    assert stats["codebook_usage"] == pytest.approx(2 / 5)
    assert stats["perplexity"] == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert 1.0 < stats["perplexity"] < 2.0
    assert codebook_stats(torch.tensor([0, 9, 0])) == pytest.approx({"codebook_usage": 1 / 3, "perplexity": 1.0})
    assert codebook_stats(torch.zeros(4, dtype=torch.long)) == pytest.approx(
        {"codebook_usage": 0.0, "perplexity": 1.0})


@pytest.mark.parametrize("kind, dim, size", [("fsq", 3, 200), ("lfq", 5, 32), ("vq", 3, 16)])
def test_sizes(kind, dim, size):
    quantizer = make_quantizer(kind)
    assert (quantizer.dim, quantizer.codebook_size) == (dim, size)


@pytest.mark.parametrize("kind", QUANTIZERS)
def test_codes_roundtrip_to_latent(kind):
    quantizer = make_quantizer(kind)
    z = torch.randn(2, quantizer.dim, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    quantizer.train()
    quantizer(z)  # one training step (a VQ codebook moves towards the batch)
    quantizer.eval()
    out = quantizer(z)
    assert out.latent.shape == z.shape
    assert out.codes.shape == (2, 3, 4, 5) and out.codes.dtype == torch.int64
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < quantizer.codebook_size
    assert out.codes.unique().numel() > 1
    assert out.aux_loss.shape == ()
    torch.testing.assert_close(quantizer.codes_to_latent(out.codes), out.latent, atol=1e-5, rtol=1e-5)
    if kind != "fsq":  # (FSQ bounds its input with tanh first, so its grid points are not fixed points)
        # quantizing an already quantized latent gives the same codes back
        assert torch.equal(quantizer(quantizer.codes_to_latent(out.codes)).codes, out.codes)


def test_fsq_has_no_aux_loss_and_lfq_has_one():
    z = torch.randn(1, 3, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    assert float(make_quantizer("fsq")(z).aux_loss) == 0.0
    lfq = make_quantizer("lfq").train()
    assert float(lfq(torch.randn(1, 5, 2, 2, 2, generator=torch.Generator().manual_seed(2))).aux_loss) != 0.0


def test_straight_through_gradients():
    quantizer = make_quantizer("fsq")
    z = torch.randn(1, 3, 2, 2, 2, requires_grad=True)
    quantizer(z).latent.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", QUANTIZERS)
def test_out_of_range_codes_are_rejected(kind):
    quantizer = make_quantizer(kind)
    with pytest.raises(ValueError, match=rf"\[0, {quantizer.codebook_size}\)"):
        quantizer.codes_to_latent(torch.full((1, 1, 2, 2), quantizer.codebook_size))
    with pytest.raises(ValueError, match="out of range"):
        quantizer.codes_to_latent(torch.full((1, 1, 2, 2), -1))


def test_swap_codes_moves_codes_of_the_batch():
    torch.manual_seed(0)
    codes = torch.arange(2 * 5 * 8 * 8).view(2, 5, 8, 8)  # every code distinct: a swap is visible
    assert torch.equal(swap_codes(codes, 0.0), codes)
    swapped = swap_codes(codes, 0.25)
    assert swapped.shape == codes.shape and set(swapped.unique().tolist()) <= set(codes.unique().tolist())
    changed = (swapped != codes).double().mean().item()
    assert 0.18 < changed < 0.32  # a quarter swapped (a few land on their own position)


def test_unknown_kind():
    with pytest.raises(ValueError, match="fsq, lfq or vq"):
        make_quantizer("rvq")
