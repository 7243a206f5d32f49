"""The pipelines and tokenizers the package ships (t2v.recipes.shipped): name resolution, fp16 storage, the
shipped shapes pipeline generating a seeded video identical to a stored reference, the stills tokenizer coding a
held-out clip.

The reference is written once per shipped pipeline, by `python tests/test_shipped.py` (after `python -m
t2v.recipes.shipped RUN/pipeline shapes`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from conftest import run_main, tiny_pipeline
from t2v.generator.pipeline import TextToVideo
from t2v.recipes.shipped import is_shipped, resolve_pipeline, shipped_pipelines
from t2v.tokenizer.video_io import read_video

REFERENCE = Path(__file__).parent / "data" / "shipped_shapes_reference.npz"
PROMPT = "a red circle moving left slowly"


def reference_video(pipeline: TextToVideo) -> np.ndarray:
    """The seeded video the reference holds: 17 frames of PROMPT, seed 0, default sampling."""
    return np.concatenate(list(pipeline.generate(PROMPT, frames=17, seed=0)), axis=1)[0]


def test_the_package_ships_the_shapes_pipeline_small_and_in_fp16():
    directory = shipped_pipelines()["shapes"]
    files = [path for path in directory.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) < 50 * 2**20
    for weights in directory.rglob("model.safetensors"):
        with safe_open(str(weights), "pt") as handle:
            dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}
        assert "F16" in dtypes and dtypes <= {"F16", "F32", "I64"}  # parameters in fp16, buffers as they were
    assert is_shipped(directory) and resolve_pipeline("shapes") == directory


def test_an_existing_directory_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").mkdir()
    assert resolve_pipeline("shapes") == Path("shapes")
    assert not is_shipped(Path("shapes"))


def test_an_unknown_pipeline_is_a_one_line_error_naming_the_shipped_one(tmp_path, monkeypatch, capsys):
    assert resolve_pipeline("nothing-here") == Path("nothing-here")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["generate", "nothing-here", PROMPT, "-o", "x.mp4"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "pipeline directory not found: nothing-here" in err
    assert "shipped pipeline: shapes" in err and not (tmp_path / "x.mp4").exists()


def test_fp16_storage_halves_the_weights_and_loads_back(text, tmp_path):
    pipeline = tiny_pipeline(text)
    pipeline.save_pretrained(tmp_path / "fp32")
    pipeline.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = {name: (tmp_path / name / "generator" / "model.safetensors").stat().st_size for name in ("fp32", "fp16")}
    assert size["fp16"] < 0.6 * size["fp32"]
    loaded = TextToVideo.from_pretrained(tmp_path / "fp16")
    for (name, original), (_, back) in zip(pipeline.generator.named_parameters(),
                                           loaded.generator.named_parameters()):
        assert back.dtype == torch.float32
        assert torch.equal(back, original.detach().half().float()), name
    for (name, original), (_, back) in zip(pipeline.generator.named_buffers(), loaded.generator.named_buffers()):
        assert torch.equal(back, original), name  # buffers keep their precision


def test_the_shipped_pipeline_generates_the_reference_video():
    pipeline = TextToVideo.from_pretrained(resolve_pipeline("shapes"))
    video = reference_video(pipeline)
    reference = np.load(REFERENCE)["video"]
    assert video.shape == reference.shape == (17, 64, 64, 3)
    # identical but for float rounding across CPUs: a differently sampled code would change whole regions
    differing = np.abs(video.astype(int) - reference.astype(int))
    assert (differing > 0).mean() < 1e-3 and differing.max() <= 2


def test_t2v_generate_with_the_shipped_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = run_main(["generate", "shapes", PROMPT, "-o", "x.mp4", "--seed", "0"], monkeypatch, capsys)
    assert code == 0 and "x.mp4" in stdout
    frames, fps = read_video(tmp_path / "x.mp4")
    assert frames.shape == (17, 64, 64, 3) and fps == pytest.approx(8)
    assert json.loads((shipped_pipelines()["shapes"] / "pipeline.json").read_text())["frames"] == 17


if __name__ == "__main__":
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, video=reference_video(TextToVideo.from_pretrained(resolve_pipeline("shapes"))))
    print(f"reference → {REFERENCE}")


def test_tokenizers_ship_by_name_a_recipes_own_first(tmp_path, monkeypatch):
    import t2v.recipes
    from conftest import tiny_model
    from t2v.recipes import shipped
    from t2v.tokenizer.model import VideoTokenizer

    assert shipped.resolve_tokenizer("shapes") == shipped_pipelines()["shapes"] / "video_tokenizer"
    assert shipped.resolve_tokenizer(str(tmp_path)) == tmp_path  # an existing directory wins
    assert shipped.resolve_tokenizer("nothing-here") == Path("nothing-here")  # loading says it is missing
    root = tmp_path / "recipes"
    (root / "toy").mkdir(parents=True)
    monkeypatch.setattr(t2v.recipes, "__path__", [str(root), *t2v.recipes.__path__])
    source = tiny_model().save_pretrained(tmp_path / "run")
    target = shipped.ship_tokenizer(source, "toy")
    assert target == root / "toy" / "tokenizer" and shipped.resolve_tokenizer("toy") == target
    with safe_open(str(target / "model.safetensors"), "pt") as handle:
        assert "F16" in {handle.get_slice(name).get_dtype() for name in handle.keys()}
    loaded = VideoTokenizer.from_pretrained(target)
    assert loaded.codebook_size == VideoTokenizer.from_pretrained(source).codebook_size


def test_reconstruct_takes_a_shipped_tokenizer_by_name(tmp_path, monkeypatch, capsys):
    clip = tmp_path / "clip.mp4"
    frames = np.zeros((9, 64, 64, 3), np.uint8)
    frames[:, 20:40, 10:30] = (255, 0, 0)
    from t2v.tokenizer.video_io import write_video

    write_video(clip, frames, fps=8)
    code, out, err = run_main(["tokenizer", "reconstruct", "shapes", str(clip), str(tmp_path / "rec.mp4"),
                               "--no-side-by-side"], monkeypatch, capsys)
    assert code == 0, err
    assert "PSNR" in out and read_video(tmp_path / "rec.mp4")[0].shape == (9, 64, 64, 3)


def test_the_stills_tokenizer_ships_small_in_fp16_and_reconstructs_a_held_out_clip(tmp_path, monkeypatch, capsys):
    from t2v.recipes.shipped import shipped_tokenizers
    from t2v.recipes.stills.dataset import render_clip
    from t2v.tokenizer.video_io import write_video

    directory = shipped_tokenizers()["stills"]
    assert directory.name == "tokenizer" and directory.parent.name == "stills"  # the recipe's own, not a pipeline's
    assert sum(path.stat().st_size for path in directory.iterdir()) < 50 * 2**20
    with safe_open(str(directory / "model.safetensors"), "pt") as handle:
        assert "F16" in {handle.get_slice(name).get_dtype() for name in handle.keys()}
    frames = render_clip("the camera pans left over a cat", 17, (64, 64), np.random.default_rng(3), 8.0)
    clip = write_video(tmp_path / "cat.mp4", frames, fps=8)  # the cat is a held-out photograph
    code, out, err = run_main(["tokenizer", "reconstruct", "stills", str(clip), str(tmp_path / "rec.mp4"),
                               "--no-side-by-side"], monkeypatch, capsys)
    assert code == 0, err
    psnr = float(out.split("PSNR ")[1].split(" dB")[0])
    mean_colour = frames.reshape(17, -1, 3).mean(axis=1, keepdims=True)  # each frame's mean colour, the floor
    floor = 10 * np.log10(255.0**2 / ((frames.reshape(17, -1, 3) - mean_colour) ** 2).mean())
    assert psnr > floor + 2.0, (psnr, floor)  # it codes the picture, not only its average
