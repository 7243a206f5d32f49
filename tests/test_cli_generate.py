"""`t2v generate` and `t2v eval shapes` end to end with a tiny random pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_main, tiny_pipeline
from t2v.tokenizer.video_io import read_video, write_video


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


# --------------------------------------------------------------------------------------------- output paths
RED = "a red circle moving left slowly"


def snapshot(root) -> dict[str, bytes]:
    """Every file under `root` (relative path → bytes)."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def refused(args, monkeypatch, capsys, message: str) -> None:
    """The command exits 2 with one `Error: …` line holding `message`."""
    code, _, err = run_main(args, monkeypatch, capsys)
    assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1 and message in err, (code, err)


def test_generate_never_replaces_a_folder_it_did_not_write(pipeline_dir, tmp_path, monkeypatch, capsys):
    videos = tmp_path / "Videos"
    (videos / "holiday").mkdir(parents=True)
    (videos / "holiday" / "beach.mp4").write_bytes(b"precious")
    (videos / "notes.txt").write_text("keep")
    before = snapshot(tmp_path)
    for out in (str(videos), f"{videos}/"):
        for extra in ([], ["--overwrite"]):
            refused(["generate", str(pipeline_dir), RED, "-o", out, "--frames", "5", *extra], monkeypatch, capsys,
                    "is a folder t2v did not write")
    # checked before the model loads: a missing pipeline is not reached
    refused(["generate", str(tmp_path / "no_pipeline"), RED, "-o", f"{videos}/"], monkeypatch, capsys,
            "did not write")
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["Videos"]


def test_generate_existing_outputs_need_overwrite(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"an older video")
    refused(["generate", str(pipeline_dir), RED, "-o", str(out), "--frames", "5"], monkeypatch, capsys,
            "clip.mp4 already exists: choose another path, or pass --overwrite to replace it")
    assert out.read_bytes() == b"an older video"
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(out), "--frames", "5", "--overwrite"],
                            monkeypatch, capsys)
    assert code == 0, err
    assert read_video(out)[0].shape == (5, 16, 16, 3)
    # every output is checked before any is written: an existing second sample or preview stops the whole run
    (tmp_path / "many_s1.gif").write_bytes(b"sample")
    refused(["generate", str(pipeline_dir), RED, "-o", str(tmp_path / "many.gif"), "--num-samples", "2"],
            monkeypatch, capsys, "many_s1.gif already exists")
    (tmp_path / "one.preview.png").write_bytes(b"preview")
    refused(["generate", str(pipeline_dir), RED, "-o", str(tmp_path / "one.gif"), "--preview"], monkeypatch, capsys,
            "one.preview.png already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "many_s1.gif", "one.preview.png"]
    assert (tmp_path / "many_s1.gif").read_bytes() == b"sample"


def test_generate_rewrites_a_frame_folder_it_wrote_only_with_overwrite(pipeline_dir, tmp_path, monkeypatch, capsys):
    frames = tmp_path / "frames"
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", f"{frames}/", "--frames", "9"], monkeypatch,
                            capsys)
    assert code == 0, err
    assert read_video(frames)[0].shape[0] == 9
    before = snapshot(frames)
    refused(["generate", str(pipeline_dir), RED, "-o", str(frames), "--frames", "5"], monkeypatch, capsys,
            "holds frames t2v wrote earlier")
    assert snapshot(frames) == before
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(frames), "--frames", "5", "--overwrite"],
                            monkeypatch, capsys)
    assert code == 0, err
    assert read_video(frames)[0].shape[0] == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_generate_one_frame_to_an_image(pipeline_dir, tmp_path, monkeypatch, capsys):
    code, _, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(tmp_path / "still.png"), "--frames", "1"],
                            monkeypatch, capsys)
    assert code == 0, err
    assert (tmp_path / "still.png").is_file() and read_video(tmp_path / "still.png")[0].shape == (1, 16, 16, 3)
    refused(["generate", str(pipeline_dir), RED, "-o", str(tmp_path / "many.png"), "--frames", "3"], monkeypatch,
            capsys, "cannot write 3 frames to")
    refused(["generate", str(pipeline_dir), RED, "-o", str(tmp_path / "many.jpg")], monkeypatch, capsys,
            "cannot write 5 frames to")  # the pipeline's default length, known once it is loaded: before sampling
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.png"]


def test_generate_bad_output_paths(pipeline_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    cases = [(".", "cannot write to '.': it names no file or folder"), ("./", "names no file or folder"),
             ("out.mp4/", "the trailing '/' names a folder of frames but .mp4 a file"),
             ("out.mkv", "unknown suffix '.mkv'; use .mp4, .webm or .gif (a video), .png or .jpg (one image), or no "
                         "suffix or a trailing '/' (a folder of PNG frames)")]
    for out, message in cases:
        for extra in ([], ["--overwrite"]):
            refused(["generate", str(pipeline_dir), RED, "-o", out, *extra], monkeypatch, capsys, message)
    refused(["extend", str(pipeline_dir), "keep.txt", "-o", "."], monkeypatch, capsys, "names no file or folder")
    refused(["generate", str(pipeline_dir), RED, "-o", ".", "--num-samples", "2"], monkeypatch, capsys,
            "names no file or folder")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_generate_echoes_a_long_prompt_shortened(pipeline_dir, tmp_path, monkeypatch, capsys):
    prompt = " ".join(["red"] * 5000)
    _, stdout, _ = run_main(["generate", str(pipeline_dir), prompt, "-o", str(tmp_path / "long.gif"), "--frames", "1"],
                            monkeypatch, capsys)
    echo = stdout.splitlines()[0]
    assert "…" in echo and len(echo) < 140 and echo.startswith("'red red")


def test_extend_checks_its_outputs_first(pipeline_dir, tmp_path, monkeypatch, capsys):
    given = write_video(tmp_path / "given.mp4", np.full((5, 16, 16, 3), 40, np.uint8), fps=8)
    (tmp_path / "more.mp4").write_bytes(b"older")
    refused(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "more.mp4"), "--frames", "4"],
            monkeypatch, capsys, "already exists")
    assert (tmp_path / "more.mp4").read_bytes() == b"older"
    refused(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "next.png"), "--frames", "1"],
            monkeypatch, capsys, "holds one image but the output holds")
    refused(["extend", str(tmp_path / "no_pipeline"), str(given), "-o", str(tmp_path)], monkeypatch, capsys,
            "did not write")
    code, _, err = run_main(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "more.mp4"), "--frames",
                             "4", "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "more.mp4")[0].shape[0] == 9
    code, _, err = run_main(["extend", str(pipeline_dir), str(given), "-o", str(tmp_path / "next.png"), "--frames",
                             "1", "--only-new"], monkeypatch, capsys)
    assert code == 0, err
    assert read_video(tmp_path / "next.png")[0].shape[0] == 1


# --------------------------------------------------------------------------------------------- progress
def test_generate_and_extend_show_a_progress_bar_unless_quiet(pipeline_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "red.mp4"
    code, stdout, err = run_main(["generate", str(pipeline_dir), RED, "-o", str(out), "--frames", "9"], monkeypatch,
                                 capsys)
    assert code == 0, err
    assert "generate: 100%" in err and "9/9 [" in err and "9/9" not in stdout  # the bar: stderr only
    code, stdout, err = run_main(["extend", str(pipeline_dir), str(out), "-o", str(tmp_path / "more.mp4"), "--frames",
                                  "8"], monkeypatch, capsys)
    assert code == 0, err
    assert "extend: 100%" in err and "8/8 [" in err and stdout.startswith("continuing ")  # the new frames
    for command, source in (("generate", RED), ("extend", str(out))):
        code, stdout, err = run_main([command, str(pipeline_dir), source, "-o", str(tmp_path / f"q_{command}.mp4"),
                                      "--frames", "8", "--quiet"], monkeypatch, capsys)
        assert code == 0 and err == "" and "→" in stdout, err


def test_progress_hears_each_decoded_chunk(text, tmp_path):
    pipeline = tiny_pipeline(text)
    reports: list[int] = []
    pipeline.generate_files(RED, [tmp_path / "long.mp4"], frames=33, progress=reports.append)
    assert sum(reports) == 33 and len(reports) > 1  # a chunk of latent frames at a time, as they are written
    reports.clear()
    pipeline.extend_file(tmp_path / "long.mp4", [tmp_path / "more.mp4"], RED, frames=20, progress=reports.append)
    assert sum(reports) == 20 and len(reports) > 1


def test_eval_refuses_a_missing_pipeline_before_loading_models(tmp_path, monkeypatch, capsys):
    import t2v.cli.evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "load_pipeline", lambda *args: pytest.fail("loaded before the check"))
    code, _, err = run_main(["eval", "shapes", str(tmp_path / "none")], monkeypatch, capsys)
    assert code == 2 and "pipeline directory not found" in err and err.count("\n") == 1, err
