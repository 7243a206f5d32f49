"""tokenizer/metrics.py and losses.py: PSNR, SSIM, hinge losses, the adaptive GAN weight, LPIPS from disk."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import random_video
from t2v.tokenizer.losses import (ALEXNET_FILE, Discriminator3d, TokenizerLoss, adaptive_weight, build_lpips,
                                  reconstruction_terms, salience,
                                  generator_adversarial_loss, hinge_discriminator_loss, lpips_per_frame)
from t2v.tokenizer.config import LossConfig
from t2v.tokenizer.metrics import psnr, ssim


# 1. Metrics ------------------------------------------------------------------------------------------------------
def test_psnr_identical_is_inf():
    video = random_video(batch=2, frames=3)
    assert torch.isinf(psnr(video, video)).all() and (psnr(video, video) > 0).all()


def test_psnr_of_known_mse():
    a = torch.zeros(2, 3, 2, 8, 8)
    b = a.clone()
    b[0] += 0.2  # [-1, 1] → [0, 1]: error 0.1, MSE 0.01 → 20 dB
    b[1, :, :, :4] += 1.0  # error 0.5 on half the pixels: MSE 0.125
    expected = torch.tensor([20.0, 10 * math.log10(1 / 0.125)])
    torch.testing.assert_close(psnr(a, b), expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(psnr(b, a), expected, atol=1e-4, rtol=0)


def test_ssim_identical_is_one_and_noise_is_lower():
    torch.manual_seed(0)
    video = torch.linspace(-1, 1, 16).view(1, 1, 1, 1, 16).expand(2, 3, 3, 16, 16).clone()
    video[1] = random_video(frames=3)[0]
    torch.testing.assert_close(ssim(video, video), torch.ones(2), atol=1e-4, rtol=0)
    noisy = (video + 0.5 * torch.randn_like(video)).clamp(-1, 1)
    very_noisy = (video + 1.5 * torch.randn_like(video)).clamp(-1, 1)
    assert ssim(video, noisy).shape == (2,)
    assert (ssim(video, noisy) < 0.9).all()
    assert (ssim(video, very_noisy) < ssim(video, noisy)).all()
    assert (ssim(video, noisy) - ssim(noisy, video)).abs().max() < 1e-5  # symmetric


@pytest.mark.parametrize("size", [8, 9, 10, 12])
def test_ssim_of_small_frames(size):
    """Frames smaller than the 11-px window (8×8 is the smallest a stride-8 tokenizer takes) shrink the window."""
    video = random_video(batch=1, frames=2, height=size, width=size)
    torch.testing.assert_close(ssim(video, video), torch.ones(1), atol=1e-4, rtol=0)
    assert float(ssim(video, -video)) < 0.5


# 2. GAN losses ---------------------------------------------------------------------------------------------------
def test_hinge_losses_on_hand_made_logits():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - real) = 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0, 1.0, 3.0])  # relu(1 + fake) = 0, 1, 2, 4
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(2.5 / 3 + 7 / 4)
    assert float(hinge_discriminator_loss(torch.full((4,), 5.0), torch.full((4,), -5.0))) == 0.0
    assert float(generator_adversarial_loss(fake)) == pytest.approx(-0.5)


def test_adaptive_weight_is_ratio_of_gradient_norms():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out = layer(x)
    rec = (out - 1).pow(2).mean()
    adv = -(out * torch.randn(5, 3)).mean()
    weight = adaptive_weight(rec, adv, layer.weight)
    g_rec = torch.autograd.grad(rec, layer.weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, layer.weight, retain_graph=True)[0]
    expected = g_rec.norm() / (g_adv.norm() + 1e-4)
    assert not weight.requires_grad
    assert float(weight) == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) != pytest.approx(1.0, abs=0.05)  # a ratio, not a constant
    assert float(adaptive_weight(rec, adv, layer.weight, maximum=0.01)) == pytest.approx(min(0.01, float(expected)))
    # scaling the adversarial loss by 10 divides the weight by ~10
    assert float(adaptive_weight(rec, 10 * adv, layer.weight)) == pytest.approx(float(expected) / 10, rel=1e-3)


def test_discriminator_gives_a_grid_of_logits():
    torch.manual_seed(0)
    logits = Discriminator3d(channels=4)(random_video(batch=2, frames=5, height=16, width=16))
    assert logits.shape == (2, 1, 2, 2, 2)


# 3. LPIPS ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_lpips():
    torch.manual_seed(0)
    return build_lpips(random_backbone=True)


def test_lpips_random_backbone(random_lpips):
    assert not random_lpips.training and not any(p.requires_grad for p in random_lpips.parameters())
    a = random_video(batch=1, frames=2, height=32, width=32, seed=1)
    b = random_video(batch=1, frames=2, height=32, width=32, seed=2)
    assert float(lpips_per_frame(random_lpips, a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(lpips_per_frame(random_lpips, a, b)) > 1e-4


def test_lpips_missing_weights_say_how_to_fix():
    with pytest.raises(FileNotFoundError) as error:
        build_lpips(weights="/nonexistent.pth")
    message = str(error.value)
    assert "/nonexistent.pth" in message and ALEXNET_FILE in message
    assert "loss.lpips_weights" in message and "perceptual_weight=0" in message


def test_lpips_loads_backbone_from_file(tmp_path):
    """The AlexNet `features.*` tensors of the file end up in LPIPS's slices."""
    torch.manual_seed(3)
    shapes = {"0": (64, 3, 11, 11), "3": (192, 64, 5, 5), "6": (384, 192, 3, 3), "8": (256, 384, 3, 3),
              "10": (256, 256, 3, 3)}
    state = {}
    for index, shape in shapes.items():
        state[f"features.{index}.weight"] = torch.randn(shape) * 0.01
        state[f"features.{index}.bias"] = torch.randn(shape[0]) * 0.01
    state["classifier.1.weight"] = torch.randn(4, 4)  # other keys are ignored
    torch.save(state, tmp_path / ALEXNET_FILE)
    metric = build_lpips(weights=str(tmp_path / ALEXNET_FILE))
    assert torch.equal(getattr(metric.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(metric.net.slice2, "3").weight, state["features.3.weight"])
    assert torch.equal(getattr(metric.net.slice5, "10").bias, state["features.10.bias"])


def test_tokenizer_loss_with_perceptual_term():
    torch.manual_seed(0)
    config = LossConfig(perceptual_weight=0.5, lpips_random_backbone=True, discriminator_channels=4,
                        discriminator_start=10, quantizer_weight=2.0)
    loss = TokenizerLoss(config)
    video = random_video(batch=1, frames=5, height=32, width=32, seed=1)
    head = nn.Conv3d(3, 3, 1)
    reconstruction = head(random_video(batch=1, frames=5, height=32, width=32, seed=2))
    quantizer_loss = torch.tensor(0.25)
    total, logs = loss.generator_loss(video, reconstruction, quantizer_loss, head.weight, step=0)
    assert {"l1", "lpips", "loss"} <= set(logs) and "adversarial" not in logs
    assert logs["lpips"] > 0
    l1 = float((video - reconstruction).abs().mean())
    assert logs["l1"] == pytest.approx(l1, rel=1e-6)
    assert float(total) == pytest.approx(l1 + 0.5 * logs["lpips"] + 2.0 * 0.25, rel=1e-5)
    assert total.requires_grad

    # from discriminator_start on, the adversarial term joins with its adaptive weight
    total, logs = loss.generator_loss(video, reconstruction, quantizer_loss, head.weight, step=10)
    assert {"adversarial", "adaptive_weight"} <= set(logs)
    expected = l1 + 0.5 * logs["lpips"] + 0.5 + config.adversarial_weight * logs["adaptive_weight"] * logs[
        "adversarial"]
    assert float(total) == pytest.approx(expected, rel=1e-5)
    assert all(p.requires_grad for p in loss.discriminator.parameters())  # frozen only while used

    d_loss, d_logs = loss.discriminator_loss(video, reconstruction)
    real, fake = loss.discriminator(video), loss.discriminator(reconstruction)
    assert float(d_loss) == pytest.approx(float(hinge_discriminator_loss(real, fake)), rel=1e-6)
    assert d_logs["logits_real"] == pytest.approx(float(real.mean()), rel=1e-5)


def test_perceptual_loss_on_small_frames_is_handled():
    """LPIPS's AlexNet needs ≥ 31 px frames: smaller ones are resized, or refused with a clear message."""
    torch.manual_seed(0)
    loss = TokenizerLoss(LossConfig(perceptual_weight=0.1, lpips_random_backbone=True, discriminator_channels=4))
    video = random_video(batch=1, frames=1, height=16, width=16, seed=1)
    reconstruction = random_video(batch=1, frames=1, height=16, width=16, seed=2)
    try:
        total, logs = loss.generator_loss(video, reconstruction, torch.tensor(0.0), None, step=0)
    except ValueError as error:  # acceptable: a clear message at the boundary
        assert "perceptual" in str(error)
    else:  # also acceptable: frames resized for LPIPS
        assert math.isfinite(float(total)) and logs["lpips"] > 0


def test_tokenizer_loss_without_perceptual_term_needs_no_weights():
    loss = TokenizerLoss(LossConfig(perceptual_weight=0, lpips_weights="/nonexistent.pth",
                                    discriminator_channels=4))
    assert loss.lpips is None
    video = random_video(batch=1, frames=1, height=16, width=16)
    _, logs = loss.generator_loss(video, video.clone().requires_grad_(), torch.tensor(0.0), None, step=0)
    assert logs["l1"] == 0.0 and logs["loss"] == 0.0 and "lpips" not in logs
    assert not loss.gan_active(1999) and loss.gan_active(2000)  # default discriminator_start
    assert not TokenizerLoss(LossConfig(perceptual_weight=0, adversarial_weight=0, discriminator_channels=4,
                                        discriminator_start=0)).gan_active(10)


def test_loss_config_rejects_negative_weights():
    with pytest.raises(ValueError, match="perceptual_weight"):
        LossConfig(perceptual_weight=-0.1)


def test_gradient_difference_counts_a_blurred_edge_and_ignores_a_flat_offset():
    from t2v.tokenizer.losses import gradient_difference

    sharp = torch.zeros(1, 3, 1, 2, 8)
    sharp[..., 4:] = 1.0  # a vertical step edge (along W), the same in both rows
    blurred = sharp.clone()
    blurred[..., 3], blurred[..., 4] = 0.25, 0.75  # the same edge spread over two pixels
    assert torch.equal(gradient_difference(sharp, sharp), torch.tensor(0.0))
    # by hand: differences along W are [0,0,0,1,0,0,0] vs [0,0,.25,.5,.25,0,0]: |.25|+|.5|+|.25| over 7, along H none
    torch.testing.assert_close(gradient_difference(sharp, blurred), torch.tensor(1.0 / 7))
    torch.testing.assert_close(gradient_difference(sharp, sharp + 0.3), torch.tensor(0.0))  # only edges count


def test_temporal_difference_prices_fading_motion_and_ignores_single_frames():
    from t2v.tokenizer.losses import TokenizerLoss, temporal_difference

    steady = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(1, 3, 4, 2, 2)  # +1 every frame
    fading = torch.tensor([0.0, 1.5, 2.5, 3.0]).view(1, 1, 4, 1, 1).expand(1, 3, 4, 2, 2)  # +1.5, +1, +0.5
    assert torch.equal(temporal_difference(steady, steady + 0.7), torch.tensor(0.0))  # a constant offset is free
    torch.testing.assert_close(temporal_difference(steady, fading), torch.tensor(1.0 / 3))  # (.5 + 0 + .5) / 3
    assert torch.equal(temporal_difference(steady[:, :, :1], fading[:, :, :1]), torch.tensor(0.0))
    paced = TokenizerLoss(LossConfig(perceptual_weight=0, adversarial_weight=0, temporal_weight=3.0))
    plain = TokenizerLoss(LossConfig(perceptual_weight=0, adversarial_weight=0))
    total, logs = paced.generator_loss(steady, fading, torch.tensor(0.0), None, 0)
    base, _ = plain.generator_loss(steady, fading, torch.tensor(0.0), None, 0)
    torch.testing.assert_close(total, base + 3.0 * torch.tensor(logs["temporal"]))
    with pytest.raises(ValueError, match="temporal_weight"):
        LossConfig(temporal_weight=-1.0)


def test_gradient_weight_enters_the_loss_and_its_log():
    from t2v.tokenizer.losses import TokenizerLoss
    from t2v.tokenizer.config import LossConfig

    video = torch.rand(1, 3, 2, 8, 8) * 2 - 1
    reconstruction = video.flip(-1)
    plain = TokenizerLoss(LossConfig(perceptual_weight=0, adversarial_weight=0))
    edged = TokenizerLoss(LossConfig(perceptual_weight=0, adversarial_weight=0, gradient_weight=2.0))
    base, _ = plain.generator_loss(video, reconstruction, torch.tensor(0.0), None, 0)
    total, logs = edged.generator_loss(video, reconstruction, torch.tensor(0.0), None, 0)
    torch.testing.assert_close(total, base + 2.0 * torch.tensor(logs["gradient"]))
    with pytest.raises(ValueError, match="gradient_weight"):
        LossConfig(gradient_weight=-1)


def test_salience_marks_the_object_on_a_plain_background():
    video = -torch.ones(1, 3, 2, 8, 8)
    video[:, 0, :, 2:4, 2:4] = 1.0  # a red square on black
    video[:, 1, 1, 5, 5] = 0.0  # a dim green pixel in frame 1
    weights = salience(video)
    assert weights.shape == (1, 1, 2, 8, 8)
    assert float(weights[0, 0, 0, 2, 2]) == pytest.approx(1.0) and float(weights[0, 0, 1, 5, 5]) == pytest.approx(0.5)
    assert float(weights[0, 0, 0, 0, 0]) == 0.0 and float(weights.sum()) == pytest.approx(8 + 0.5)


def test_salience_weight_counts_missed_and_spilt_paint_alike():
    video = -torch.ones(1, 3, 1, 8, 8)
    video[:, 0, :, 2:4, 2:4] = 1.0  # a red square on black
    missed, spilt = video.clone(), video.clone()
    missed[:, 0, :, 2, 2] = -1.0  # an object pixel left black …
    spilt[:, 0, :, 6, 6] = 1.0  # … and a background pixel painted red
    plain, weighted = LossConfig(l1_weight=1.0), LossConfig(l1_weight=1.0, salience_weight=9.0)
    unweighted = float(reconstruction_terms(video, missed, plain)[0])
    assert float(reconstruction_terms(video, spilt, plain)[0]) == pytest.approx(unweighted)
    assert float(reconstruction_terms(video, missed, weighted)[0]) == pytest.approx(10 * unweighted)
    assert float(reconstruction_terms(video, spilt, weighted)[0]) == pytest.approx(10 * unweighted)
    slightly_off = video.clone()
    slightly_off[:, 1, :, 6, 6] = -0.5  # a faint error on the background weighs less
    assert float(reconstruction_terms(video, slightly_off, weighted)[0]) == pytest.approx(
        (1 + 9 * 0.25) * float(reconstruction_terms(video, slightly_off, plain)[0]))
