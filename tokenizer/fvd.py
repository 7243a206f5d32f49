"""Fréchet Video Distance (FVD) between two folders of videos, in StyleGAN-V's protocol.

The protocol (StyleGAN-V's `frechet_video_distance.py`, which reproduces the original TensorFlow FVD;
common_metrics_on_video_quality's StyleGAN-V path is the same, cd-fvd's I3D path differs in the resize and weights):
- each video's first 16 frames (`frames`) at its native rate; a shorter video is an error naming it;
- frames resized to cover 224×224 (`size`) and center-cropped (tokenizer/video_io.py's `resize_and_crop`: bilinear,
  antialiased when shrinking), scaled to [-1, 1];
- features: the 400 Kinetics logits of I3D (the layer before the softmax, averaged over time), from StyleGAN-V's
  TorchScript `i3d_torchscript.pt` called with `rescale=False, resize=False, return_features=True`, or from a state
  dict of pytorch-i3d's `InceptionI3d` (tokenizer/i3d.py). StyleGAN-V's trainer passes uint8 frames with
  `rescale=True, resize=True` and lets the TorchScript scale and resize them; its authors' check against the
  TensorFlow FVD (fvd-comparison) and common_metrics_on_video_quality resize and scale first, as here;
- each set's mean and population covariance (sums in float64, as StyleGAN-V's `FeatureStats`), and
  FVD = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) with scipy.linalg.sqrtm, keeping the real part.
FVD depends on the number of videos (the covariance of N < 400 videos is rank-deficient and the score is biased
upward): compare scores of equal counts only; papers use 2,048 per set.

Why not a package: cd-fvd (the one FVD package on PyPI) cannot read a folder of videos here: its loader decodes
with torchvision's `VideoClips`, whose decoding torchvision removed (0.29 raises ImportError, pointing to
TorchCodec); it imports `requests` and downloads weights and statistics at run time when no path is given; its I3D
is the pytorch-i3d port (its state dicts load into tokenizer/i3d.py), not StyleGAN-V's TorchScript; and it resamples
videos with replacement up to 2,048 by default. torchmetrics has no FVD (its video metric is VMAF), torch-fidelity
and clean-fid are image metrics, common_metrics_on_video_quality is not a package. Beyond reading videos (already
video_io.py's job) FVD is a mean, a covariance and a matrix square root: written here, with the I3D in i3d.py.
"""
from __future__ import annotations

import json
import math
import os
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.linalg
import torch

from t2v.tokenizer.i3d import InceptionI3d
from t2v.tokenizer.outputs import FRAME_MARKER
from t2v.tokenizer.video_io import read_video, resize_and_crop

I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"
WHERE_TO_GET = (f"download StyleGAN-V's TorchScript I3D (Kinetics-400) from {I3D_URL}?dl=1 and pass its path to "
                "--i3d (a state dict of pytorch-i3d's InceptionI3d, e.g. cd-fvd's i3d_pretrained_400.pt, works too)")
WEIGHT_NAMES = ("i3d_torchscript.pt", "i3d_pretrained_400.pt")  # looked for in an --i3d directory
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".y4m")
STYLEGAN_V_CALL = {"rescale": False, "resize": False, "return_features": True}


# --------------------------------------------------------------------------------------------- the distance
def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2): |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ −
    2 (Σ₁Σ₂)^½), the square root by scipy.linalg.sqrtm, its real part kept (as StyleGAN-V)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"Fréchet distance of a mean {mu1.shape} and covariance {sigma1.shape} against "
                         f"{mu2.shape} and {sigma2.shape}: need means (D,) and covariances (D, D) of one D")
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.square(mu1 - mu2).sum() + np.trace(sigma1 + sigma2 - 2 * np.real(root)))


@dataclass
class FeatureStats:
    """Running mean and population covariance of feature rows (sums in float64, as StyleGAN-V's FeatureStats)."""

    count: int = 0
    total: np.ndarray | None = None
    outer: np.ndarray | None = None

    def add(self, features: np.ndarray | torch.Tensor) -> None:
        """Add rows (N, D)."""
        rows = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else features
        rows = np.asarray(rows, np.float64)
        if self.total is None:
            self.total, self.outer = np.zeros(rows.shape[1]), np.zeros((rows.shape[1],) * 2)
        self.count += len(rows)
        self.total += rows.sum(axis=0)
        self.outer += rows.T @ rows

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.count

    @property
    def cov(self) -> np.ndarray:
        return self.outer / self.count - np.outer(self.mean, self.mean)


# --------------------------------------------------------------------------------------------- the detector
@dataclass
class Detector:
    """A feature network: videos (B, 3, T, H, W) in [-1, 1] → features (B, D)."""

    module: torch.nn.Module
    kind: str  # what was loaded, for the report
    stylegan_call: bool = False  # a TorchScript forward(x, rescale, resize, return_features), as StyleGAN-V's

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        output = self.module(videos, **STYLEGAN_V_CALL) if self.stylegan_call else self.module(videos)
        if not isinstance(output, torch.Tensor) or output.shape[0] != len(videos):
            raise ValueError(f"the --i3d network ({self.kind}) did not return a (batch, features) tensor for "
                             f"{len(videos)} videos; {WHERE_TO_GET}")
        return output.flatten(1).float()


def weights_file(path: str | os.PathLike) -> Path:
    """The I3D weights file `path` names: the file, or a known name inside a directory; missing is a one-line
    FileNotFoundError saying where to get it."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in WEIGHT_NAMES if (path / name).is_file()]
        if not found:
            raise FileNotFoundError(f"no I3D weights in {path} (looked for {', '.join(WEIGHT_NAMES)}); {WHERE_TO_GET}")
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights not found: {path}; {WHERE_TO_GET}")
    return path


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip with a code/ folder (a torch.save state dict has none)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in f"/{name}" for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class _NotTensors(ValueError):
    """A readable file that holds something else than a state dict."""


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch.save'd state dict (no pickled code: weights_only), `module.`
    prefixes (DataParallel) and a `state_dict` wrapper removed."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise _NotTensors(f"it holds a {type(state).__name__}, not a dict of tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_detector(path: str | os.PathLike, device: torch.device | str = "cpu") -> Detector:
    """The I3D at `path` on `device`, in evaluation mode: StyleGAN-V's TorchScript file (or any TorchScript module
    from videos to features), or a state dict of pytorch-i3d's InceptionI3d (.pt/.pth, or .safetensors)."""
    path = weights_file(path)
    unreadable = f"cannot load I3D weights from {path}: {{}}; {WHERE_TO_GET}"
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # torch ≥ 2.9 calls TorchScript deprecated; StyleGAN-V ships it
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as error:
            raise ValueError(unreadable.format(str(error).strip().splitlines()[0])) from None
        arguments = {argument.name for argument in module.forward.schema.arguments}
        return Detector(module, f"TorchScript {path.name}", stylegan_call=set(STYLEGAN_V_CALL) <= arguments)
    try:
        state = _state_dict(path)
    except Exception as error:  # noqa: BLE001 - pickle, zip and safetensors each raise their own types
        reason = str(error) if isinstance(error, _NotTensors) else f"unreadable: {type(error).__name__}"
        raise ValueError(unreadable.format(f"neither TorchScript nor a state dict ({reason})")) from None
    num_classes = state["logits.conv3d.weight"].shape[0] if "logits.conv3d.weight" in state else 400
    model = InceptionI3d(num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        reason = " ".join(str(error).split())[:300]
        raise ValueError(unreadable.format(f"not a state dict of pytorch-i3d's InceptionI3d ({reason})")) from None
    return Detector(model.eval().to(device), f"InceptionI3d state dict {path.name}")


# --------------------------------------------------------------------------------------------- the videos
def video_paths(folder: str | os.PathLike) -> list[Path]:
    """The videos under `folder`, sorted: video files (any depth) and folders of frames t2v wrote; hidden entries
    skipped. A missing or empty folder is a one-line error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of videos at {folder}: pass a directory of video files")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        if FRAME_MARKER in files:  # a frame folder t2v wrote is one video
            found.append(Path(root))
            dirs[:] = []
            continue
        found += [Path(root) / name for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES]
    if not found:
        raise ValueError(f"{folder} holds no videos ({', '.join(VIDEO_SUFFIXES)} files, or frame folders written "
                         "by t2v): pass the folder that holds them")
    return sorted(found)


def read_clip(path: Path, frames: int, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """A video's first `frames` frames covering size×size, center-cropped, as (3, T, size, size) in [-1, 1], and
    its own (height, width)."""
    video, _ = read_video(path, max_frames=frames)
    if len(video) < frames:
        raise ValueError(f"{path} has {len(video)} frames, fewer than the {frames} FVD takes: pass --frames "
                         f"{len(video)} or leave the file out")
    clip = torch.from_numpy(resize_and_crop(video, (size, size))).permute(3, 0, 1, 2)
    return clip.float() / 127.5 - 1, tuple(video.shape[1:3])


@dataclass
class VideoSet:
    """What one side of the comparison was: its folder, the videos used, their native sizes (W×H)."""

    folder: str
    videos: int
    resolutions: list[str] = field(default_factory=list)


def folder_stats(paths: list[Path], detector: Detector, frames: int, size: int, batch: int,
                 device: torch.device | str = "cpu",
                 progress: Callable[[int], None] | None = None) -> tuple[FeatureStats, list[str]]:
    """Feature statistics of the videos `paths` (`batch` at a time), and their native resolutions."""
    stats, resolutions = FeatureStats(), set()
    for start in range(0, len(paths), batch):
        clips = []
        for path in paths[start:start + batch]:
            clip, (height, width) = read_clip(path, frames, size)
            clips.append(clip)
            resolutions.add((width, height))
        stats.add(detector(torch.stack(clips).to(device)))
        if progress is not None:
            progress(len(clips))
    return stats, [f"{width}x{height}" for width, height in sorted(resolutions)]


# --------------------------------------------------------------------------------------------- the score
@dataclass
class FVDReport:
    """An FVD score with what it was measured on."""

    fvd: float
    real: VideoSet
    fake: VideoSet
    frames: int
    size: int
    features: int
    detector: str
    protocol: str = ("StyleGAN-V: first FRAMES frames, resized to cover SIZE x SIZE and center-cropped, [-1, 1], "
                     "I3D logits, population covariances, scipy sqrtm")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def format(self) -> str:
        sides = "; ".join(f"{name} {side.folder}: {side.videos} videos of {', '.join(side.resolutions)}"
                          for name, side in (("real", self.real), ("fake", self.fake)))
        return (f"FVD {self.fvd:.5g} ({sides}; first {self.frames} frames at {self.size}x{self.size}, "
                f"{self.features} features of {self.detector})")


def fvd(real_dir: str | os.PathLike, fake_dir: str | os.PathLike, i3d: str | os.PathLike, frames: int = 16,
        size: int = 224, num: int | None = None, batch: int = 8, device: torch.device | str = "cpu",
        progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None) -> FVDReport:
    """FVD between the videos of `real_dir` and `fake_dir` (the first `num` of each, sorted by path; all when None),
    with the I3D at `i3d`. Folders and weights are checked before any video is read. `total(n)` is told how many
    videos will be read, `progress(k)` each time k more are."""
    if frames < 1 or size < 1 or batch < 1 or (num is not None and num < 1):
        raise ValueError(f"frames, size, batch and num must be positive, got {frames}, {size}, {batch}, {num}")
    sets = [video_paths(real_dir)[:num], video_paths(fake_dir)[:num]]
    for folder, paths in zip((real_dir, fake_dir), sets):
        if len(paths) < 2:
            raise ValueError(f"{folder} holds 1 video: FVD compares distributions, give each folder 2 or more "
                             "(papers use 2,048)")
    detector = load_detector(i3d, device)
    if total is not None:
        total(sum(map(len, sets)))
    (real, real_sizes), (fake, fake_sizes) = (folder_stats(paths, detector, frames, size, batch, device, progress)
                                              for paths in sets)
    if min(real.count, fake.count) < len(real.mean):
        warnings.warn(f"{min(real.count, fake.count)} videos for {len(real.mean)} features: the covariances are "
                      "rank-deficient and FVD is biased upward; compare only scores of equal counts (papers use "
                      "2,048 videos)")
    score = frechet_distance(real.mean, real.cov, fake.mean, fake.cov)
    if not math.isfinite(score):
        raise ValueError(f"FVD is {score}: the {detector.kind} features are not finite; check the --i3d weights")
    return FVDReport(score, VideoSet(str(real_dir), real.count, real_sizes), VideoSet(str(fake_dir), fake.count,
                     fake_sizes), frames, size, len(real.mean), detector.kind)
