"""`t2v data prepare`: each dataset layout (tiny real videos, real annotation files) → index rows and skip counts."""
from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import run_main

from t2v.recipes.prepare import Candidate, PrepareReport, filter_split, index_path, prepare, probe_candidate
from t2v.recipes.registry import RECIPES
from t2v.recipes.ucf101.prepare import class_caption
from t2v.tokenizer.data import read_index, write_index

H, W = 16, 24  # non-square, so the index's [H, W] order is checked


# --------------------------------------------------------------------------------------------- tiny files
def frames(count: int = 6) -> np.ndarray:
    return np.random.default_rng(count).integers(0, 256, (count, H, W, 3), dtype=np.uint8)


def video(path: Path, count: int = 6, fps: float = 8.0) -> Path:
    """A real tiny video: .avi is MPEG-4 part 2 through PyAV, the rest through the project's writer."""
    from t2v.tokenizer.video_io import write_video

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".avi":
        return write_video(path, frames(count), fps=fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, image in enumerate(frames(count)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return path


def empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([header, *rows])


def skips(report: PrepareReport) -> tuple[int, int, int, int]:
    """(missing, empty, unreadable, uncaptioned)."""
    return tuple(report.skipped[reason] for reason in ("missing", "empty", "unreadable", "uncaptioned"))


# --------------------------------------------------------------------------------------------- ucf101
def ucf101_tree(root: Path) -> Path:
    videos = root / "UCF-101"
    video(videos / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", fps=25)
    video(videos / "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", fps=25)
    video(videos / "YoYo/v_YoYo_g09_c02.avi", fps=25)
    corrupt(videos / "YoYo/v_YoYo_g01_c01.avi")
    empty(videos / "PlayingDaf/v_PlayingDaf_g01_c01.avi")  # v_PlayingDaf_g02_c01.avi is missing
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n60 PlayingDaf\n101 YoYo\n")
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                           "YoYo/v_YoYo_g01_c01.avi 101\nPlayingDaf/v_PlayingDaf_g01_c01.avi 60\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
                                          "PlayingDaf/v_PlayingDaf_g02_c01.avi\r\nYoYo/v_YoYo_g09_c02.avi\r\n")
    (lists / "trainlist02.txt").write_text("YoYo/v_YoYo_g09_c02.avi 101\n")
    (lists / "testlist02.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n")
    return root


@pytest.mark.parametrize("name, caption", [
    ("ApplyEyeMakeup", "apply eye makeup"), ("YoYo", "yo yo"), ("PlayingDaf", "playing daf"),
    ("TVShow", "tv show"), ("PlayHTMLGame", "play html game"), ("Kick2Ball", "kick 2 ball"), ("Surfing", "surfing"),
    ("CleanAndJerk", "clean and jerk"), ("BMX", "bmx")])
def test_ucf101_class_caption(name, caption):
    assert class_caption(name) == caption


def test_ucf101_split_one_rows_and_skips(tmp_path):
    root = ucf101_tree(tmp_path / "ucf")
    report = prepare("ucf101", root, root / "index.jsonl")
    rows = lines(root / "index.jsonl")
    assert [(row["path"], row["caption"], row["split"]) for row in rows] == [
        ("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "apply eye makeup", "train"),
        ("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "apply eye makeup", "test"),
        ("UCF-101/YoYo/v_YoYo_g09_c02.avi", "yo yo", "test")]
    first = rows[0]
    assert first["fps"] == 25.0 and first["duration"] == pytest.approx(6 / 25) and first["size"] == [H, W]
    assert first["label"] == "ApplyEyeMakeup" and first["class_id"] == 1
    assert list(first)[:6] == ["path", "caption", "split", "fps", "duration", "size"]
    assert skips(report) == (1, 1, 1, 0) and report.rows == 3 and report.splits == {"train": 1, "test": 2}
    assert all(Path(row["path"]).is_file() for row in read_index(root / "index.jsonl"))  # the reader resolves them
    text = report.format()
    assert "wrote 3 rows (test 2, train 1;" in text and "missing 1, empty 1, unreadable 1" in text
    assert "v_PlayingDaf_g02_c01.avi" in text and "\n" not in text


def test_ucf101_split_choice_and_absolute_paths(tmp_path):
    root = ucf101_tree(tmp_path / "ucf")
    out = tmp_path / "elsewhere" / "index.jsonl"
    report = prepare("ucf101", root, out, split="train2")
    rows = lines(out)
    assert [(row["caption"], row["split"]) for row in rows] == [("yo yo", "train")] and report.total == 1
    assert rows[0]["path"] == str(root / "UCF-101/YoYo/v_YoYo_g09_c02.avi")  # not under the index's folder
    prepare("ucf101", root, out, split="2")
    assert [(row["caption"], row["split"]) for row in lines(out)] == [("yo yo", "train"), ("apply eye makeup", "test")]
    with pytest.raises(ValueError, match="unknown UCF-101 split 'train4'.*train1"):
        prepare("ucf101", root, out, split="train4")
    (root / "ucfTrainTestlist" / "testlist02.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testlist02.txt not found"):
        prepare("ucf101", root, out, split="2")


# --------------------------------------------------------------------------------------------- msrvtt
def msrvtt_tree(root: Path) -> Path:
    video(root / "videos/video0.mp4")
    video(root / "videos/video1.mp4", count=4, fps=10)
    corrupt(root / "videos/video2.mp4")  # video3.mp4 is missing
    video(root / "TestVideo/video4.mp4")  # the 2016 release's folder for test videos
    video(root / "videos/video5.mp4")
    train_val = {
        "info": {}, "videos": [
            {"category": 9, "url": "u", "video_id": "video0", "start time": 1.0, "end time": 2.0, "split": "train",
             "id": 0},
            {"category": 3, "video_id": "video1", "split": "validate", "id": 1},
            {"category": 3, "video_id": "video2", "split": "train", "id": 2},
            {"category": 3, "video_id": "video3", "split": "validate", "id": 3}],
        "sentences": [
            {"caption": "a man is singing", "video_id": "video0", "sen_id": 0},
            {"caption": "a  man sings a song", "video_id": "video0", "sen_id": 1},
            {"caption": "a man is singing", "video_id": "video0", "sen_id": 2},
            {"caption": "a dog barks", "video_id": "video1", "sen_id": 3},
            {"caption": "noise", "video_id": "video2", "sen_id": 4},
            {"caption": "gone", "video_id": "video3", "sen_id": 5}]}
    test = {"videos": [{"video_id": "video4", "split": "test"}, {"video_id": "video5", "split": "test"}],
            "sentences": [{"caption": "a cat sleeps", "video_id": "video4", "sen_id": 6}]}
    (root / "train_val_videodatainfo.json").write_text(json.dumps(train_val))
    (root / "test_videodatainfo.json").write_text(json.dumps(test))
    return root


def test_msrvtt_captions_and_official_splits(tmp_path):
    root = msrvtt_tree(tmp_path / "msrvtt")
    report = prepare("msrvtt", root, root / "index.jsonl")
    rows = {row["video_id"]: row for row in lines(root / "index.jsonl")}
    assert list(rows) == ["video4", "video0", "video1"]  # test file first (sorted names), then train_val
    assert rows["video0"]["caption"] == "a man is singing" and rows["video0"]["path"] == "videos/video0.mp4"
    assert rows["video0"]["captions"] == ["a man is singing", "a man sings a song"] and rows["video0"]["category"] == 9
    assert rows["video1"]["split"] == "val" and rows["video1"]["fps"] == 10.0 and rows["video4"]["split"] == "test"
    assert rows["video1"]["duration"] == pytest.approx(0.4) and rows["video4"]["path"] == "TestVideo/video4.mp4"
    assert skips(report) == (1, 0, 1, 1)  # video3 missing, video2 corrupt, video5 has no caption

    report = prepare("msrvtt", root, root / "val.jsonl", split="validate")
    assert [row["video_id"] for row in lines(root / "val.jsonl")] == ["video1"] and report.splits == {"val": 1}
    with pytest.raises(ValueError, match="no videos of split 'dev': the splits here are test, train, val"):
        prepare("msrvtt", root, root / "dev.jsonl", split="dev")
    assert not (root / "dev.jsonl").exists()
    (root / "test_videodatainfo.json").write_text(json.dumps({"videos": [{"id": 1}], "sentences": []}))
    with pytest.raises(ValueError, match="is not an MSR-VTT annotation file"):
        prepare("msrvtt", root, root / "index.jsonl")


# --------------------------------------------------------------------------------------------- webvid
def webvid_tree(root: Path) -> Path:
    header = ["videoid", "contentUrl", "duration", "page_dir", "name"]
    video(root / "001_page/1001.mp4")
    empty(root / "001_page/1003.mp4")
    corrupt(root / "002_page/1004.mp4")
    video(root / "003_page/2001.mp4")
    write_csv(root / "results_2M_train.csv", header, [
        [1001, "https://x/1001.mp4", "PT00H00M10S", "001_page", "Aerial view, of a beach. "],
        [1002, "https://x/1002.mp4", "PT00H00M10S", "001_page", "missing clip"],
        [1003, "https://x/1003.mp4", "PT00H00M10S", "001_page", "empty clip"],
        [1004, "https://x/1004.mp4", "PT00H00M10S", "002_page", "corrupt clip"]])
    write_csv(root / "results_2M_val.csv", header, [[2001, "https://x/2001.mp4", "PT00H00M08S", "003_page", "cat"]])
    return root


def test_webvid_splits_from_csv_names(tmp_path):
    root = webvid_tree(tmp_path / "webvid")
    report = prepare("webvid", root, root / "index.jsonl")
    rows = lines(root / "index.jsonl")
    assert [(row["path"], row["caption"], row["split"], row["videoid"]) for row in rows] == [
        ("001_page/1001.mp4", "Aerial view, of a beach.", "train", "1001"), ("003_page/2001.mp4", "cat", "val", "2001")]
    assert skips(report) == (1, 1, 1, 0)
    report = prepare("webvid", root, root / "val.jsonl", split="val")
    assert report.total == 1 and lines(root / "val.jsonl")[0]["videoid"] == "2001"
    with pytest.raises(ValueError, match=r"no WebVid csv of split 'test'.*train \(results_2M_train.csv\)"):
        prepare("webvid", root, root / "test.jsonl", split="test")
    write_csv(root / "results_2M_train.csv", ["videoid", "name"], [[1, "x"]])
    with pytest.raises(ValueError, match="lacks the column"):
        prepare("webvid", root, root / "index.jsonl")
    assert len(lines(root / "index.jsonl")) == 2  # the failed run left the old index whole


# --------------------------------------------------------------------------------------------- kinetics
def kinetics_tree(root: Path) -> Path:
    header = ["label", "youtube_id", "time_start", "time_end", "split"]
    video(root / "train/abc_000012_000022.mp4", fps=12)  # flat
    video(root / "train/playing_guitar/def_000000_000010.mp4")  # in a label folder
    corrupt(root / "train/riding a bike/bad_000001_000011.mp4")
    video(root / "val/jkl_000005_000015.webm")
    video(root / "test/tst_000003_000013.mp4")
    write_csv(root / "annotations/train.csv", header, [
        ["riding a bike", "abc", 12, 22, "train"], ["playing_guitar", "def", 0, 10, "train"],
        ["surfing water", "ghi", 30, 40, "train"], ["riding a bike", "bad", 1, 11, "train"]])
    write_csv(root / "annotations/validate.csv", header, [["surfing water", "jkl", 5.0, 15.0, "validate"]])
    write_csv(root / "annotations/test.csv", ["youtube_id", "time_start", "time_end", "split"],
              [["tst", 3, 13, "test"]])
    return root


def test_kinetics_both_layouts_and_labels(tmp_path):
    root = kinetics_tree(tmp_path / "k700")
    report = prepare("kinetics", root, root / "index.jsonl")
    rows = lines(root / "index.jsonl")
    assert [(row["path"], row["caption"], row["split"]) for row in rows] == [
        ("train/abc_000012_000022.mp4", "riding a bike", "train"),
        ("train/playing_guitar/def_000000_000010.mp4", "playing guitar", "train"),
        ("val/jkl_000005_000015.webm", "surfing water", "val")]
    assert rows[0]["fps"] == 12.0 and rows[0]["time_start"] == 12.0 and rows[0]["youtube_id"] == "abc"
    assert "start" not in rows[0] and "end" not in rows[0]  # the clip is already cut
    assert skips(report) == (1, 0, 1, 1)  # ghi missing, bad corrupt, the test clip has no label
    report = prepare("kinetics", root, root / "val.jsonl", split="validate")
    assert report.rows == 1 and report.total == 1 and report.splits == {"val": 1}


# --------------------------------------------------------------------------------------------- folder
def folder_tree(root: Path) -> Path:
    video(root / "a.mp4")
    (root / "a.txt").write_text("a cat on a sofa\n\n a second   caption \n")
    video(root / "sub/b.avi")
    (root / "sub/b.txt").write_text("a dog\n")
    video(root / "sub/deeper/c.GIF")
    (root / "sub/deeper/c.txt").write_text("a bird")
    video(root / "e.mp4")  # no caption
    corrupt(root / "f.mkv")
    (root / "f.txt").write_text("corrupt")
    empty(root / "g.webm")
    (root / "g.txt").write_text("empty")
    video(root / ".hidden.mp4")
    (root / "notes.md").write_text("not a video")
    return root


def test_folder_sidecar_captions(tmp_path):
    root = folder_tree(tmp_path / "mine")
    report = prepare("folder", root, root / "index.jsonl")
    rows = lines(root / "index.jsonl")
    assert [(row["path"], row["caption"], row["split"]) for row in rows] == [
        ("a.mp4", "a cat on a sofa", "train"), ("sub/b.avi", "a dog", "train"), ("sub/deeper/c.GIF", "a bird", "train")]
    assert rows[0]["captions"] == ["a cat on a sofa", "a second caption"] and "captions" not in rows[1]
    assert skips(report) == (0, 1, 1, 1)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_folder_caption_file(tmp_path, kind):
    root = folder_tree(tmp_path / "mine")
    entries = [("sub/b.avi", "a dog running", "val"), ("a.mp4", "a cat", "train"), ("a.mp4", "a cat, again", ""),
               ("nope.mp4", "missing", "train"), (str(root / "e.mp4"), "now captioned", "train")]
    file = tmp_path / f"captions.{kind}"
    if kind == "csv":
        write_csv(file, ["path", "caption", "split"], [list(entry) for entry in entries])
    else:
        file.write_text("".join(json.dumps({"path": p, "caption": c, **({"split": s} if s else {})}) + "\n"
                                for p, c, s in entries))
    report = prepare("folder", root, tmp_path / "index.jsonl", caption_file=file)
    rows = lines(tmp_path / "index.jsonl")
    assert [(row["path"], row["caption"], row["split"]) for row in rows] == [
        ("mine/sub/b.avi", "a dog running", "val"), ("mine/a.mp4", "a cat", "train"),
        ("mine/e.mp4", "now captioned", "train")]
    assert rows[1]["captions"] == ["a cat", "a cat, again"]
    assert skips(report) == (1, 0, 0, 3)  # nope.mp4; c.GIF, f.mkv, g.webm are not in the file
    report = prepare("folder", root, tmp_path / "val.jsonl", split="val", caption_file=file)
    assert report.rows == 1 and report.splits == {"val": 1}


def test_folder_bad_caption_file(tmp_path):
    root = folder_tree(tmp_path / "mine")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.mp4"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: each row needs a \"path\" and a \"caption\""):
        prepare("folder", root, tmp_path / "index.jsonl", caption_file=tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="caption file not found"):
        prepare("folder", root, tmp_path / "index.jsonl", caption_file=tmp_path / "absent.csv")


# --------------------------------------------------------------------------------------------- shapes
def test_shapes_reprobe(tmp_path):
    from t2v.recipes.shapes.dataset import make_dataset

    root = tmp_path / "shapes"
    make_dataset(root, num=4, frames=4, size=(16, 16), seed=0)
    original = lines(root / "index.jsonl")
    report = prepare("shapes", root, tmp_path / "shapes.jsonl")
    rows = lines(tmp_path / "shapes.jsonl")
    assert [(r["path"], r["caption"], r["split"]) for r in rows] == [
        ("shapes/" + o["path"], o["caption"], o["split"]) for o in original]
    assert all(r["fps"] == 8.0 and r["size"] == [16, 16] and r["duration"] == pytest.approx(0.5) for r in rows)
    assert report.rows == 4 and skips(report) == (0, 0, 0, 0)
    prepare("shapes", root, root / "index.jsonl")  # in place: read first, then replaced atomically
    assert [r["path"] for r in lines(root / "index.jsonl")] == [o["path"] for o in original]
    with pytest.raises(FileNotFoundError, match="t2v data shapes"):
        prepare("shapes", tmp_path, tmp_path / "x.jsonl")


# --------------------------------------------------------------------------------------------- machinery
def test_index_path_relative_under_the_index_dir_else_absolute(tmp_path):
    assert index_path(tmp_path / "a/b.mp4", tmp_path) == "a/b.mp4"
    assert index_path(tmp_path / "a/b.mp4", tmp_path / "c") == str(tmp_path / "a/b.mp4")


def test_probe_candidate_reasons(tmp_path):
    good = video(tmp_path / "good.mp4")
    cases = {good: None, tmp_path / "absent.mp4": "missing", empty(tmp_path / "e.mp4"): "empty",
             corrupt(tmp_path / "c.mp4"): "unreadable"}
    for path, reason in cases.items():
        assert probe_candidate(Candidate(path, "x", "train"), tmp_path)[1] == reason
    assert probe_candidate(Candidate(good, "  ", "train"), tmp_path) == (None, "uncaptioned")
    with pytest.raises(ValueError, match="clash"):
        Candidate(good, "x", "train", {"start": 1.0})


def test_write_index_is_atomic_and_empty_results_fail(tmp_path):
    out = tmp_path / "index.jsonl"
    write_index([{"path": "a", "caption": "b"}], out)

    def broken():
        yield {"path": "c", "caption": "d"}
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        write_index(broken(), out)
    assert lines(out) == [{"path": "a", "caption": "b"}] and [p.name for p in tmp_path.iterdir()] == ["index.jsonl"]
    root = tmp_path / "bad"
    corrupt(root / "x.mp4")
    (root / "x.txt").write_text("caption")
    with pytest.raises(ValueError, match=r"folder: no usable video under .*unreadable 1"):
        prepare("folder", root, out)
    assert lines(out) == [{"path": "a", "caption": "b"}]


def test_filter_split_and_bad_inputs(tmp_path):
    items = [Candidate(Path("a"), "x", "train"), Candidate(Path("b"), "y", "val")]
    assert [c.path.name for c in filter_split(items, "validation")] == ["b"]
    with pytest.raises(ValueError, match="the splits here are train, val"):
        list(filter_split(items, "test"))
    with pytest.raises(FileNotFoundError, match=r"dataset root not found \(or not a folder\): .*nope"):
        prepare("ucf101", tmp_path / "nope", tmp_path / "i.jsonl")
    with pytest.raises(ValueError, match="--caption-file is not an option of the ucf101 recipe"):
        prepare("ucf101", tmp_path, tmp_path / "i.jsonl", caption_file="c.csv")
    with pytest.raises(ValueError, match="unknown dataset 'hmdb'"):
        prepare("hmdb", tmp_path, tmp_path / "i.jsonl")
    with pytest.raises(FileNotFoundError, match="UCF-101 not found"):
        prepare("ucf101", tmp_path, tmp_path / "i.jsonl")


# --------------------------------------------------------------------------------------------- CLI
def test_cli_help_lists_every_recipe(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")  # the usage line is not wrapped mid-word after pytest's long program name
    code, out, _ = run_main(["data", "prepare", "--help"], monkeypatch, capsys)
    assert code == 0 and "t2v data prepare ucf101" in out
    for name in ("shapes", "ucf101", "msrvtt", "webvid", "kinetics", "folder"):
        assert name in RECIPES and name in out


def test_cli_end_to_end_and_missing_root(tmp_path, monkeypatch, capsys):
    root = ucf101_tree(tmp_path / "ucf")
    code, out, err = run_main(["data", "prepare", "ucf101", str(root), str(root / "index.jsonl"), "--split", "1",
                               "--workers", "2"], monkeypatch, capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"prepare ucf101: {root} → {root / 'index.jsonl'}, split 1"
    assert "ucf101: wrote 3 rows (test 2, train 1;" in out and "missing 1, empty 1, unreadable 1" in out
    assert len(lines(root / "index.jsonl")) == 3

    code, out, err = run_main(["data", "prepare", "webvid", str(tmp_path / "absent"), str(tmp_path / "i.jsonl")],
                              monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"Error: dataset root not found (or not a folder): {tmp_path / 'absent'} ")
    assert "recipes/webvid/README.md" in err
    code, _, err = run_main(["data", "prepare", "hmdb", str(root), str(tmp_path / "i.jsonl")], monkeypatch, capsys)
    assert code == 2 and "'hmdb' is not one of" in err
