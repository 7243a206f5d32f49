"""`t2v generate` and `t2v eval shapes` end to end with a tiny random pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_main, tiny_pipeline
from t2v.tokenizer.video_io import read_video


@pytest.fixture(scope="module")
def pipeline_dir(text, tmp_path_factory):
    return tiny_pipeline(text).save_pretrained(tmp_path_factory.mktemp("pipe") / "pipeline")


def test_generate_writes_the_video_and_a_preview(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "red.mp4"
    code, stdout, _ = run_main(["generate", str(pipeline_dir), "a red circle moving left slowly", "-o", str(out),
                                "--frames", "9", "--seed", "1", "--preview"], monkeypatch, capsys)
    assert code == 0 and "red.mp4" in stdout
    frames, fps = read_video(out)
    assert frames.shape == (9, 16, 16, 3) and fps == pytest.approx(8)
    assert (tmp_path / "red.preview.png").is_file()
    # the same seed gives the same video: written as PNG frames to compare exactly
    for name in ("a", "b"):
        run_main(["generate", str(pipeline_dir), "a red circle moving left slowly", "-o", str(tmp_path / name),
                  "--frames", "9", "--seed", "1"], monkeypatch, capsys)
    assert np.array_equal(read_video(tmp_path / "a")[0], read_video(tmp_path / "b")[0])


def test_generate_many_prompts_and_samples(pipeline_dir, tmp_path, monkeypatch, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving left slowly\n\na blue square moving up quickly\n")
    code, _, _ = run_main(["generate", str(pipeline_dir), "--prompts-file", str(prompts), "-o",
                           str(tmp_path / "v.gif"), "--num-samples", "2", "--seconds", "0.5", "--fps", "16",
                           "--cfg", "2", "--top-k", "10", "--top-p", "0.9"], monkeypatch, capsys)
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("v_*.gif")) == ["v_p000_s0.gif", "v_p000_s1.gif",
                                                               "v_p001_s0.gif", "v_p001_s1.gif"]
    assert read_video(tmp_path / "v_p001_s1.gif")[0].shape[0] == 8  # 0.5 s at 16 fps


def test_generate_bad_input_gives_one_line_errors(pipeline_dir, tmp_path, monkeypatch, capsys):
    cases = [
        (["generate", str(pipeline_dir), "  ", "-o", str(tmp_path / "x.mp4")], "prompt is empty"),
        (["generate", str(tmp_path / "missing"), "a red circle moving left slowly", "-o", str(tmp_path / "x.mp4")],
         "pipeline directory not found"),
        (["generate", str(pipeline_dir), "a red circle moving left slowly", "-o", str(tmp_path / "x.mp4"),
          "--size", "20x16"], "not divisible"),
        (["generate", str(pipeline_dir), "a red circle moving left slowly", "-o", str(tmp_path / "x.avi")],
         "cannot write"),
    ]
    for args, message in cases:
        code, _, err = run_main(args, monkeypatch, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*x*"))


def test_eval_shapes_scores_with_the_verifier(pipeline_dir, tmp_path, monkeypatch, capsys):
    code, stdout, _ = run_main(["eval", "shapes", str(pipeline_dir), "--num", "3", "--split", "heldout",
                                "--out", str(tmp_path / "eval")], monkeypatch, capsys)
    assert code == 0 and "heldout" in stdout
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert report["scores"]["heldout"]["num"] == 3 and len(report["videos"]) == 3
    # a random pipeline draws noise, never a clean object: the verifier must not pass it
    assert report["scores"]["heldout"]["overall"] == 0.0


def test_sampling_option_help_states_the_library_defaults():
    from click.testing import CliRunner

    from t2v.cli.generate import generate
    from t2v.cli.options import sampling_config
    from t2v.generator.sample import SamplingConfig

    defaults = SamplingConfig()
    assert sampling_config(cfg_scale=None, temperature=None, top_k=None, top_p=None) == defaults
    text = " ".join(CliRunner().invoke(generate, ["--help"], terminal_width=200).output.split())
    for value in (defaults.cfg_scale, defaults.temperature, defaults.top_k, defaults.top_p):
        assert f"[default: {value:g}]" in text
