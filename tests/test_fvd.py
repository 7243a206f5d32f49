"""FVD (tokenizer/fvd.py, tokenizer/i3d.py, `t2v eval fvd`): the Fréchet distance against closed forms, the feature
statistics, the command end to end with a randomly initialised 3D-conv network saved as TorchScript (identical sets
score 0, brightness-shifted sets score more the larger the shift), the I3D replica's layout, and one-line errors."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import run_main
from t2v.tokenizer.fvd import FeatureStats, frechet_distance, load_detector
from t2v.tokenizer.i3d import InceptionI3d
from t2v.tokenizer.video_io import write_video

FRAMES, SIZE, COUNT = 16, 32, 12


# --------------------------------------------------------------------------------------------- the maths
def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.5, 3, size=6), rng.uniform(0.5, 3, size=6)
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(var1) - np.sqrt(var2)).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(2 ** 2 + (2 - 3) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0, abs=1e-10)


def test_frechet_distance_of_full_covariances_is_the_symmetric_form():
    """tr((Σ₁Σ₂)^½) = tr((Σ₁^½ Σ₂ Σ₁^½)^½), computed here by eigendecompositions (no sqrtm)."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    values, vectors = np.linalg.eigh(sigma1)
    root1 = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    cross = np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)).sum()
    expected = np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * cross
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)
    with pytest.raises(ValueError, match="need means"):
        frechet_distance(mu1, sigma1, mu2[:4], sigma2[:4, :4])


def test_feature_stats_are_the_population_mean_and_covariance_in_any_chunks():
    rows = np.random.default_rng(2).normal(size=(50, 4)) * [1, 2, 3, 4] + [1, -1, 0, 5]
    stats = FeatureStats()
    for chunk in np.array_split(rows, 7):
        stats.add(torch.from_numpy(chunk).float() if len(chunk) % 2 else chunk)
    assert stats.count == 50
    np.testing.assert_allclose(stats.mean, rows.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats.cov, np.cov(rows, rowvar=False, bias=True), rtol=1e-5, atol=1e-6)


def test_samples_of_two_gaussians_approach_their_distance():
    rng = np.random.default_rng(3)
    real, fake = FeatureStats(), FeatureStats()
    real.add(rng.normal(0, 1, size=(20000, 3)))
    fake.add(rng.normal([1, 0, 0], [2, 1, 1], size=(20000, 3)))
    assert frechet_distance(real.mean, real.cov, fake.mean, fake.cov) == pytest.approx(1 + 1, rel=0.05)


# --------------------------------------------------------------------------------------------- end to end
class TinyVideoNet(nn.Module):
    """Two random 3D convolutions and a mean: 8 features. Its forward has StyleGAN-V's I3D signature and refuses
    any other call than the protocol's."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv3d(3, 8, 3, stride=2)
        self.b = nn.Conv3d(8, 8, 3, stride=2)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        assert not rescale and not resize and return_features, "called outside StyleGAN-V's FVD protocol"
        assert x.min() >= -1 and x.max() <= 1, "frames not in [-1, 1]"
        return self.b(torch.relu(self.a(x))).mean(dim=[2, 3, 4])


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "tiny_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch ≥ 2.9, still supported
        torch.jit.script(TinyVideoNet()).save(str(path))
    return path


def base_videos(seed: int = 0, count: int = COUNT) -> np.ndarray:
    """uint8 (N, T, H, W, 3) blocky random videos with values in [0, 150]."""
    blocks = np.random.default_rng(seed).integers(0, 150, size=(count, FRAMES, SIZE // 4, SIZE // 4, 3))
    return blocks.repeat(4, axis=2).repeat(4, axis=3).astype(np.uint8)


def write_set(folder: Path, videos: np.ndarray, shift: int = 0) -> Path:
    """The videos, brightened by `shift`, as mp4 files (the first two in a subfolder, one as a frame folder)."""
    for index, video in enumerate(np.clip(videos.astype(int) + shift, 0, 255).astype(np.uint8)):
        name = f"sub/{index:03d}.mp4" if index < 2 else f"{index:03d}" if index == 2 else f"{index:03d}.mp4"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(folder / name, video, fps=8)
    return folder


@pytest.fixture(scope="module")
def video_sets(tmp_path_factory) -> dict[int, Path]:
    """The same videos at brightness shifts 0, 20, 50, 100 (a folder each), and the shift-0 set written again."""
    root, videos = tmp_path_factory.mktemp("fvd"), base_videos()
    sets = {shift: write_set(root / f"shift{shift}", videos, shift) for shift in (0, 20, 50, 100)}
    sets[-1] = write_set(root / "again", videos)
    return sets


def run_fvd(args: list, monkeypatch, capsys, tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / "fvd.json"
    code, stdout, err = run_main(["eval", "fvd", *map(str, args), "--out", str(out), "--device", "cpu"], monkeypatch,
                                 capsys)
    assert code == 0, err
    assert ("eval fvd: 100%" in err) != ("-q" in args)  # the progress bar on stderr, none with --quiet
    return json.loads(out.read_text()), stdout


def test_identical_sets_score_zero_and_shifted_sets_score_more_with_the_shift(tiny_net, video_sets, monkeypatch,
                                                                               capsys, tmp_path):
    same, stdout = run_fvd([video_sets[0], video_sets[-1], "--i3d", tiny_net, "--size", SIZE, "-q"], monkeypatch,
                           capsys, tmp_path)
    assert abs(same["fvd"]) < 1e-6
    assert same["real"] == {"folder": str(video_sets[0]), "videos": COUNT, "resolutions": [f"{SIZE}x{SIZE}"]}
    assert same["fake"]["videos"] == COUNT and (same["frames"], same["size"], same["features"]) == (FRAMES, SIZE, 8)
    assert same["detector"] == "TorchScript tiny_torchscript.pt"
    assert stdout.startswith("FVD ") and f"{COUNT} videos of {SIZE}x{SIZE}" in stdout and "first 16 frames" in stdout
    scores = [run_fvd([video_sets[0], video_sets[shift], "--i3d", tiny_net, "--size", SIZE], monkeypatch, capsys,
                      tmp_path)[0]["fvd"] for shift in (20, 50, 100)]
    assert 1e3 * abs(same["fvd"]) < scores[0] < scores[1] < scores[2], scores


def test_frames_size_num_and_batch_are_what_the_report_says(tiny_net, video_sets, monkeypatch, capsys, tmp_path):
    report, _ = run_fvd([video_sets[0], video_sets[50], "--i3d", tiny_net, "--frames", 8, "--size", 48, "--num", 9,
                         "--batch", 2], monkeypatch, capsys, tmp_path)
    assert (report["real"]["videos"], report["fake"]["videos"], report["frames"], report["size"]) == (9, 9, 8, 48)
    assert report["fvd"] > 0


def test_the_i3d_replica_has_pytorch_i3d_layout_and_loads_from_a_state_dict(video_sets, monkeypatch, capsys,
                                                                            tmp_path):
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    state = model.state_dict()
    assert len(state) == 344 and sum(p.numel() for p in model.parameters()) == 12_697_264  # as pytorch-i3d's
    assert {"Conv3d_1a_7x7.conv3d.weight", "Mixed_4b.b1b.bn.running_var", "Mixed_5c.b3b.conv3d.weight",
            "logits.conv3d.weight", "logits.conv3d.bias"} <= set(state)
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save({f"module.{key}": value for key, value in state.items()}, folder / "i3d_pretrained_400.pt")
    detector = load_detector(folder / "i3d_pretrained_400.pt")
    x = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(detector(x), model(x)) and model(x).shape == (2, 400)
    with pytest.warns(UserWarning, match="^3 videos for 400 features: the covariances are rank-deficient"):
        code, stdout, err = run_main(["eval", "fvd", str(video_sets[0]), str(video_sets[100]), "--i3d", str(folder),
                                      "--frames", "8", "--size", "32", "--num", "3", "--device", "cpu"], monkeypatch,
                                     capsys)
    assert code == 0, err
    assert "400 features of InceptionI3d state dict i3d_pretrained_400.pt" in stdout


def test_a_torchscript_network_without_stylegan_v_arguments_is_called_with_the_videos_alone(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(3, 4, 3), nn.Flatten(2)).eval()
    path = tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(net, torch.zeros(1, 3, 4, 8, 8)).save(str(path))
    detector = load_detector(path)
    x = torch.rand(3, 3, 4, 8, 8)
    assert not detector.stylegan_call and torch.allclose(detector(x), net(x).flatten(1))


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("case, message", [
    ("missing folder", "no folder of videos at {missing}: pass a directory of video files"),
    ("empty folder", "{empty} holds no videos (.mp4"),
    ("one video", "{one} holds 1 video: FVD compares distributions"),
    ("missing weights", "I3D weights not found: {missing}.pt; download StyleGAN-V's TorchScript I3D (Kinetics-400) "
                        "from https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 and pass its path"),
    ("folder without weights", "no I3D weights in {empty} (looked for i3d_torchscript.pt, i3d_pretrained_400.pt); "
                               "download"),
    ("not weights", "cannot load I3D weights from {junk}: neither TorchScript nor a state dict"),
    ("other state dict", "cannot load I3D weights from {other}: not a state dict of pytorch-i3d's InceptionI3d"),
    ("short videos", "{short} has 16 frames, fewer than the 20 FVD takes: pass --frames 16 or leave the file out"),
    ("bad device", "unknown device 'gpu7'"),
])
def test_bad_input_is_a_one_line_error(case, message, tiny_net, video_sets, monkeypatch, capsys, tmp_path):
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "one": tmp_path / "one",
             "junk": tmp_path / "junk.pt", "other": tmp_path / "other.pt", "short": video_sets[0] / "002"}
    paths["empty"].mkdir()
    write_set(paths["one"], base_videos(count=1))
    paths["junk"].write_bytes(b"not a network")
    torch.save({"weight": torch.zeros(2)}, paths["other"])
    real, fake, weights, extra = video_sets[0], video_sets[20], tiny_net, []
    if case == "missing folder":
        fake = paths["missing"]
    elif case in ("empty folder", "one video"):
        real = paths["empty" if case == "empty folder" else "one"]
    elif case == "missing weights":
        weights = paths["missing"].with_suffix(".pt")
    elif case == "folder without weights":
        weights = paths["empty"]
    elif case in ("not weights", "other state dict"):
        weights = paths["junk" if case == "not weights" else "other"]
    elif case == "short videos":
        extra = ["--frames", "20"]
    elif case == "bad device":
        extra = ["--device", "gpu7"]
    args = ["eval", "fvd", str(real), str(fake), "--i3d", str(weights), "--size", str(SIZE), *extra]
    code, stdout, err = run_main(args + ([] if "--device" in extra else ["--device", "cpu"]), monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and stdout == ""
    assert lines[-1].startswith("Error: " + message.format(**paths)), err
    assert len(lines) == 1 or case == "short videos"  # that one fails mid-run, after the progress bar started


def test_eval_lists_fvd_beside_the_recipe_evaluations(monkeypatch, capsys):
    code, out, _ = run_main(["eval", "--help"], monkeypatch, capsys)
    assert code == 0
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[-1] == "fvd" and "shapes" in listed
    assert "fvd     Fréchet Video Distance (FVD) between two folders of videos." in out
    code, out, _ = run_main(["eval", "fvd", "--help"], monkeypatch, capsys)
    assert code == 0 and "--i3d" in out and "i3d_torchscript.pt" in out
