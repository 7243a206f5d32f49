"""Tokenizer training losses: L1 + LPIPS + hinge GAN with a 3D patch discriminator and the VQGAN adaptive weight.

The only user of `lpips`. Its AlexNet backbone must come from disk (no downloads at run time): the torch hub cache
(`<hub>/checkpoints/alexnet-owt-7be5be79.pth`) or a path in the config. Tests build LPIPS with a random backbone.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.func import functional_call

from t2v.tokenizer.config import LossConfig

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"


def alexnet_weights_path(configured: str | None) -> Path:
    """Where the LPIPS backbone weights are expected; a clear error says how to provide them if absent."""
    path = Path(configured) if configured else Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS needs the AlexNet backbone weights, not found at {path}: download {ALEXNET_URL} on a machine "
            f"with internet and copy it there (or set loss.lpips_weights=PATH), or train without the perceptual "
            f"loss with --set loss.perceptual_weight=0")
    return path


def build_lpips(weights: str | None = None, random_backbone: bool = False) -> nn.Module:
    """LPIPS (AlexNet) with its backbone loaded from disk, frozen, in eval mode. Raises if the weights are absent."""
    import lpips

    state = None if random_backbone else torch.load(alexnet_weights_path(weights), map_location="cpu",
                                                    weights_only=True)
    metric = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False)
    if state is not None:
        slices = [getattr(metric.net, f"slice{i}") for i in range(1, metric.net.N_slices + 1)]
        layers = {name: module for block in slices for name, module in block.named_children()}
        for key, tensor in state.items():
            if key.startswith("features."):
                _, index, param = key.split(".")
                getattr(layers[index], param).data.copy_(tensor)
    for parameter in metric.parameters():
        parameter.requires_grad_(False)
    return metric.eval()


LPIPS_MIN_SIZE = 32  # AlexNet's pooling needs frames of at least 31 px


def lpips_per_frame(metric: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS over the frames of two videos (B, 3, T, H, W) in [-1, 1]; small frames are upsampled first."""
    frames_a = rearrange(a, "b c t h w -> (b t) c h w")
    frames_b = rearrange(b, "b c t h w -> (b t) c h w")
    smallest = min(frames_a.shape[-2:])
    if smallest < LPIPS_MIN_SIZE:
        scale = LPIPS_MIN_SIZE / smallest
        frames_a = F.interpolate(frames_a, scale_factor=scale, mode="bilinear", align_corners=False)
        frames_b = F.interpolate(frames_b, scale_factor=scale, mode="bilinear", align_corners=False)
    return metric(frames_a, frames_b).mean()


class Discriminator3d(nn.Module):
    """3D PatchGAN: strided 3D convs down to a grid of real/fake logits over space and time."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.layers = nn.Sequential(
            nn.Conv3d(3, c, (3, 4, 4), stride=(1, 2, 2), padding=1), nn.LeakyReLU(0.2),
            nn.Conv3d(c, 2 * c, (3, 4, 4), stride=(2, 2, 2), padding=1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv3d(2 * c, 4 * c, (3, 4, 4), stride=(2, 2, 2), padding=1), nn.GroupNorm(8, 4 * c),
            nn.LeakyReLU(0.2),
            nn.Conv3d(4 * c, 1, 3, padding=1),
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.layers(video)


def gradient_difference(video: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the spatial finite differences (along H and along W) of two videos (B, 3, T, H, W): a blurred
    edge has smaller differences than the sharp one, so unlike L1 on pixels this term is not content with the
    average of the sharp answers (the gradient difference loss of Mathieu et al., 2016)."""
    along_h = (video.diff(dim=3) - reconstruction.diff(dim=3)).abs().mean()
    along_w = (video.diff(dim=4) - reconstruction.diff(dim=4)).abs().mean()
    return along_h + along_w


def temporal_difference(video: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean L1 between the frame-to-frame differences of two videos (B, 3, T, H, W); 0 for single frames. Pixel L1
    accepts a reconstruction whose motion fades within each latent frame and jumps at the next (measured on the
    stills tokenizer: consecutive-frame change 11.7, 8.0, 5.8, 3.5 against a steady 12 in the clip), which the
    motion check reads as a still shot; this term prices that change of pace directly."""
    if video.shape[2] < 2:
        return video.new_zeros(())
    return (video.diff(dim=2) - reconstruction.diff(dim=2)).abs().mean()


def salience(video: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, H, W) in [0, 1]: how far each pixel's colour is from its frame's median colour (the largest channel
    distance, over the [-1, 1] range's 2). On a plain background it marks the objects."""
    frames = rearrange(video, "b c t h w -> b c t (h w)")
    median = frames.median(dim=-1, keepdim=True).values.unsqueeze(-1)  # (B, 3, T, 1, 1)
    return ((video - median).abs().amax(dim=1, keepdim=True) / 2).clamp(max=1.0)


def reconstruction_terms(video: torch.Tensor, reconstruction: torch.Tensor, config: LossConfig,
                         float_logs: bool = True) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
    """The pixel terms of the loss (L1, L2, gradient and temporal differences; LPIPS and the GAN are added by the
    caller), and their values for logging: floats, or with `float_logs=False` detached 0-d tensors (no wait for the
    device).

    With `salience_weight` w, L1 and L2 weigh each pixel 1 + w·salience, the larger of the target's and the
    reconstruction's: on shapes the background is 95% of the pixels, and unweighted the codes learn where the
    object is long before its colour (measured: a mean-colour blob for the first 1,000+ steps; with w = 9 the
    colours are learnt within 600). The reconstruction's own salience makes paint spilt on the background cost as
    much as paint missing from the object; weighted by the target's alone, every shape decodes as a fat square blob.
    """
    error = video - reconstruction
    l1, l2 = error.abs().mean(), error.pow(2).mean()
    logs = {"l1": l1, "l2": l2}
    if config.salience_weight > 0:
        shown = torch.maximum(salience(video), salience(reconstruction.detach()))
        weight = 1 + config.salience_weight * shown
        l1, l2 = (weight * error.abs()).mean(), (weight * error.pow(2)).mean()
    total = config.l1_weight * l1 + config.l2_weight * l2
    if config.gradient_weight > 0:
        edges = gradient_difference(video, reconstruction)
        total = total + config.gradient_weight * edges
        logs["gradient"] = edges
    if config.temporal_weight > 0:
        pace = temporal_difference(video, reconstruction)
        total = total + config.temporal_weight * pace
        logs["temporal"] = pace
    return total, log_values(logs, float_logs)


def log_values(logs: dict[str, torch.Tensor], as_floats: bool) -> dict[str, float | torch.Tensor]:
    """Logged loss terms as floats (one wait for the device), or as they are, detached."""
    if as_floats:
        return dict(zip(logs, torch.stack([value.detach().float() for value in logs.values()]).tolist()))
    return {name: value.detach() for name, value in logs.items()}


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(reconstruction_loss: torch.Tensor, adversarial_loss: torch.Tensor,
                    last_layer: torch.Tensor, maximum: float = 1e4) -> torch.Tensor:
    """VQGAN's balance: ‖∇ rec‖ / ‖∇ adv‖ at the decoder's last layer, so neither term drowns the other."""
    rec_grad = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adversarial_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (adv_grad.norm() + 1e-4)).clamp(0.0, maximum).detach()


class TokenizerLoss(nn.Module):
    """All terms of the generator (tokenizer) side and of the discriminator side. Their logged values are floats,
    or with `float_logs=False` detached 0-d tensors: a trainer that reads them only at its log steps then never
    waits for the device in between."""

    def __init__(self, config: LossConfig, float_logs: bool = True) -> None:
        super().__init__()
        self.config, self.float_logs = config, float_logs
        self.discriminator = Discriminator3d(config.discriminator_channels)
        self.lpips = (build_lpips(config.lpips_weights, config.lpips_random_backbone)
                      if config.perceptual_weight > 0 else None)

    def gan_active(self, step: int, adversarial_weight: float | None = None) -> bool:
        """Whether the GAN term is on at `step` (with `adversarial_weight` in place of the config's, if given)."""
        weight = self.config.adversarial_weight if adversarial_weight is None else adversarial_weight
        return weight > 0 and step >= self.config.discriminator_start

    def generator_loss(self, video: torch.Tensor, reconstruction: torch.Tensor, quantizer_loss: torch.Tensor,
                       last_layer: torch.Tensor, step: int,
                       adversarial_weight: float | None = None) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """Loss of the tokenizer for one batch, and its terms for logging; `adversarial_weight` overrides the
        config's GAN weight (the decoder fine-tune's own)."""
        cfg = self.config
        adversarial_weight = cfg.adversarial_weight if adversarial_weight is None else adversarial_weight
        reconstruction_loss, logs = reconstruction_terms(video, reconstruction, cfg, float_logs=False)
        if self.lpips is not None:
            perceptual = lpips_per_frame(self.lpips, video, reconstruction)
            reconstruction_loss = reconstruction_loss + cfg.perceptual_weight * perceptual
            logs["lpips"] = perceptual
        total = reconstruction_loss + cfg.quantizer_weight * quantizer_loss
        if self.gan_active(step, adversarial_weight):
            # The discriminator as a fixed function here: its parameters detached, so this term gives them no
            # gradient, and a DDP-wrapped discriminator (the trainer's, for its own step) never sees this pass.
            frozen = {name: parameter.detach() for name, parameter in self.discriminator.named_parameters()}
            adversarial = generator_adversarial_loss(functional_call(self.discriminator, frozen, (reconstruction,)))
            weight = adaptive_weight(reconstruction_loss, adversarial, last_layer)
            total = total + adversarial_weight * weight * adversarial
            logs.update(adversarial=adversarial, adaptive_weight=weight)
        logs["loss"] = total
        return total, log_values(logs, self.float_logs)

    def discriminator_loss(self, video: torch.Tensor, reconstruction: torch.Tensor,
                           discriminator: nn.Module | None = None) -> tuple[torch.Tensor, dict]:
        """Hinge loss of the discriminator on real clips vs. (detached) reconstructions, both in one forward of
        `discriminator` (default: this loss's own; a trainer passes its DDP-wrapped one, which allows one forward per
        backward). Its GroupNorm normalises each clip alone, so the joint batch changes no logit."""
        logits = (discriminator or self.discriminator)(torch.cat([video, reconstruction.detach()]))
        real_logits, fake_logits = logits.split(len(video))
        loss = hinge_discriminator_loss(real_logits, fake_logits)
        logs = {"d_loss": loss, "logits_real": real_logits.mean(), "logits_fake": fake_logits.mean()}
        return loss, log_values(logs, self.float_logs)
