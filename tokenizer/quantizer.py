"""The tokenizer's quantizer: FSQ, LFQ or EMA-VQ from vector-quantize-pytorch behind one small interface.

Every kind maps a latent (B, d, t, h, w) to codes (B, t, h, w) and back; the encoder emits exactly `dim` channels,
so no projection hides inside the quantizer. Also measures codebook usage and perplexity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from vector_quantize_pytorch import FSQ, LFQ, VectorQuantize

from t2v.tokenizer.config import QuantizerConfig


@dataclass
class QuantizerOutput:
    latent: torch.Tensor  # (B, d, t, h, w) quantized, straight-through gradients
    codes: torch.Tensor  # (B, t, h, w) int64
    aux_loss: torch.Tensor  # scalar: LFQ entropy + commitment, VQ commitment, 0 for FSQ


class Quantizer(nn.Module):
    """FSQ (levels), LFQ (2^bits codes, commitment + entropy losses) or VQ (EMA codebook, dead-code restart), as
    `QuantizerConfig` says."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.kind = config.kind
        if config.kind == "fsq":
            self.dim = len(config.fsq_levels)
            self.codebook_size = math.prod(config.fsq_levels)
            self.quantizer = FSQ(levels=list(config.fsq_levels))
        elif config.kind == "lfq":
            self.dim = config.lfq_bits
            self.codebook_size = 2**config.lfq_bits
            self.quantizer = LFQ(dim=config.lfq_bits, codebook_size=self.codebook_size,
                                 entropy_loss_weight=config.lfq_entropy, commitment_loss_weight=config.lfq_commitment)
        elif config.kind == "vq":
            self.dim = config.vq_dim
            self.codebook_size = config.vq_codebook_size
            self.quantizer = VectorQuantize(dim=config.vq_dim, codebook_size=config.vq_codebook_size,
                                            decay=config.vq_decay, commitment_weight=config.vq_commitment,
                                            threshold_ema_dead_code=config.vq_dead_code_threshold)
        else:
            raise ValueError(f"unknown quantizer {config.kind!r}: choose fsq, lfq or vq")
        # No k-means init for VQ: it would rewrite the codebook on the first encode, even in eval mode. EMA updates
        # and dead-code restarts happen in training mode only, so encoding never changes the model.

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        batch, _, t, h, w = z.shape
        tokens = rearrange(z, "b d t h w -> b (t h w) d")
        if self.kind == "fsq":
            quantized, codes = self.quantizer(tokens)
            aux_loss = z.new_zeros(())
        else:
            quantized, codes, aux_loss = self.quantizer(tokens)
        latent = rearrange(quantized, "b (t h w) d -> b d t h w", t=t, h=h, w=w)
        codes = rearrange(codes.long(), "b (t h w) -> b t h w", t=t, h=h, w=w)
        return QuantizerOutput(latent=latent, codes=codes, aux_loss=aux_loss.sum())

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, t, h, w) → quantized latent (B, d, t, h, w)."""
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"codes out of range [0, {self.codebook_size}): this tokenizer did not produce them")
        _, t, h, w = codes.shape
        flat = rearrange(codes, "b t h w -> b (t h w)")
        if self.kind == "vq":
            tokens = self.quantizer.get_output_from_indices(flat)
        else:
            tokens = self.quantizer.indices_to_codes(flat)
        return rearrange(tokens, "b (t h w) d -> b d t h w", t=t, h=h, w=w)


def swap_codes(codes: torch.Tensor, fraction: float) -> torch.Tensor:
    """A copy of `codes` in which each position, with probability `fraction`, takes the code of a random position
    of the batch: plausible codes in wrong places, as a generator's mistakes are (from torch's global RNG)."""
    flat = codes.reshape(-1)
    swapped = torch.rand(flat.shape, device=codes.device) < fraction
    sources = torch.randint(0, flat.numel(), flat.shape, device=codes.device)
    return torch.where(swapped, flat[sources], flat).view_as(codes)


def codebook_stats(counts: torch.Tensor) -> dict[str, float]:
    """Usage (fraction of codes seen at least once) and perplexity (exp entropy) from a histogram of code counts."""
    total = counts.sum().clamp(min=1)
    probs = counts.double() / total
    entropy = -(probs[probs > 0] * probs[probs > 0].log()).sum()
    return {"codebook_usage": float((counts > 0).double().mean()), "perplexity": float(entropy.exp())}
