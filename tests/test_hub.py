"""Hub-ready checkpoints (core/hub.py): model cards written by `save_pretrained` (front matter the hub reads, the
training config, the config, the scores), carried through a reload; `from_pretrained` of a hub id through
`huggingface_hub.snapshot_download` (faked: nothing is downloaded), its one-line errors offline, and today's errors
for a missing path that is no hub id; `push_to_hub` against a fake `HfApi`."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

from conftest import tiny_generator, tiny_model, tiny_pipeline
from t2v.core.checkpoint import export_weights
from t2v.core.hub import CARD_FILE, REPO_PLACEHOLDER, card_metadata, is_hub_id
from t2v.generator.model import VideoGenerator
from t2v.generator.pipeline import PARTS, PipelineInfo, TextToVideo
from t2v.tokenizer.model import VideoTokenizer

TOKENIZER_EVALS = [{"step": 20, "loss": 0.5, "eval_psnr": 21.5, "eval_ssim": 0.61},
                   {"step": 30, "loss": 0.4},
                   {"step": 40, "eval_psnr": 24.25, "eval_ssim": 0.7125, "eval_codebook_usage": 0.9},
                   {"step": 60, "eval_psnr": 99.0, "eval_ssim": 0.99}]  # after the export: not these weights'
GENERATOR_EVALS = [{"step": 10, "eval_loss": 3.5}, {"step": 40, "eval_loss": 2.75}]
EVAL_SCORES = {"seen": {"num": 8, "pass_rate": 0.75}, "heldout": {"num": 8, "pass_rate": 0.5}}


def fake_run(directory: Path, model, training: dict, evals: list[dict], step: int = 40) -> Path:
    """A training run directory as the trainers leave one: config.json with the training config (the model's under
    "model"), model.safetensors exported at `step`, metrics.jsonl."""
    directory.mkdir(parents=True)
    config = {"name": directory.name, **training, "model": dataclasses.asdict(model.config)}
    (directory / "config.json").write_text(json.dumps(config))
    export_weights(model.state_dict(), directory, step)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in evals))
    return directory


@pytest.fixture
def tokenizer_run(tmp_path):
    training = {"steps": 60, "batch_size": 4, "data": {"drawn": "t2v.recipes.shapes.dataset:draw_clips",
                                                       "size": [16, 16]}, "optim": {"lr": 0.001}}
    return fake_run(tmp_path / "shapes-tokenizer-00001", tiny_model(), training, TOKENIZER_EVALS)


@pytest.fixture
def generator_run(tmp_path, text):
    generator = tiny_generator(text_size=text.size, codebook_size=tiny_model().codebook_size)
    training = {"steps": 40, "batch_size": 8, "data": {"shards": "runs/shapes/tokens"}}
    run = fake_run(tmp_path / "shapes-generator-00001", generator, training, GENERATOR_EVALS)
    text.save(run)
    return run


def front_matter(directory: Path) -> dict:
    """The card's front matter, as the hub's own parser reads it."""
    return ModelCard.load(directory / CARD_FILE).data.to_dict()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# 1. Cards ----------------------------------------------------------------------------------------------------
def test_a_tokenizer_from_a_run_saves_a_card_with_its_training_config_and_scores(tokenizer_run, tmp_path):
    tokenizer = VideoTokenizer.from_pretrained(tokenizer_run)
    tokenizer.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [CARD_FILE, "config.json", "model.safetensors"]
    meta = front_matter(tmp_path / "tok")
    assert meta["library_name"] == "t2v" and meta["license"] == "mit" and "video-tokenizer" in meta["tags"]
    assert meta["t2v"]["trained_steps"] == 40 and meta["t2v"]["training"]["name"] == "shapes-tokenizer-00001"
    assert meta["t2v"]["scores"] == {"step": 40, "eval_psnr": 24.25, "eval_ssim": 0.7125, "eval_codebook_usage": 0.9}
    card = (tmp_path / "tok" / CARD_FILE).read_text()
    for shown in ("| eval_psnr | 24.25 |", "| eval_ssim | 0.7125 |", "held-out evaluation at step 40",
                  "| data.drawn | t2v.recipes.shapes.dataset:draw_clips |", "| exported at step | 40 |",
                  "| codebook size | 64 |", "| spatial_stride | 8 |", "| temporal_stride | 4 |",
                  "| channels | [8, 8, 16, 16] |", "| quantizer.fsq_levels | [4, 4, 4] |"):
        assert shown in card, shown
    assert "lfq_bits" not in card  # only the settings of the quantizer it has

    again = VideoTokenizer.from_pretrained(tmp_path / "tok")  # the card's history survives a reload and a save
    assert again.provenance == tokenizer.provenance
    again.save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / CARD_FILE).read_text() == card


def test_a_generator_card_holds_its_held_out_loss(generator_run, tmp_path):
    generator = VideoGenerator.from_pretrained(generator_run)
    generator.save_pretrained(tmp_path / "gen")
    meta = front_matter(tmp_path / "gen")
    assert meta["t2v"]["kind"] == "video-generator" and meta["t2v"]["scores"] == {"step": 40, "eval_loss": 2.75}
    card = (tmp_path / "gen" / CARD_FILE).read_text()
    for shown in ("| eval_loss | 2.75 |", "| data.shards | runs/shapes/tokens |", "| layers | 2 |", "| hidden | 64 |",
                  "| decoding | token |", "| codebook_size | 64 |"):
        assert shown in card, shown


def test_a_pipeline_card_holds_its_parts_and_the_recipe_evaluation(tokenizer_run, generator_run, text, tmp_path):
    pipeline = TextToVideo(VideoTokenizer.from_pretrained(tokenizer_run), VideoGenerator.from_pretrained(generator_run),
                           text, PipelineInfo(fps=8, size=(16, 16), frames=5))
    (tmp_path / "eval.json").write_text(json.dumps({"scores": EVAL_SCORES, "videos": []}))
    pipeline.save_pretrained(tmp_path / "pipe", scores=tmp_path / "eval.json")
    assert sorted(p.name for p in (tmp_path / "pipe").iterdir()) == sorted([CARD_FILE, "pipeline.json", *PARTS])
    assert (tmp_path / "pipe" / "video_tokenizer" / CARD_FILE).is_file()
    assert (tmp_path / "pipe" / "generator" / CARD_FILE).is_file()
    meta = front_matter(tmp_path / "pipe")
    assert meta["pipeline_tag"] == "text-to-video" and meta["t2v"]["scores"] == EVAL_SCORES
    card = (tmp_path / "pipe" / CARD_FILE).read_text()
    for shown in ("| seen | 8 | 0.75 |", "| heldout | 8 | 0.5 |", "| eval_psnr | 24.25 |", "| eval_loss | 2.75 |",
                  "| name | shapes-tokenizer-00001 |", "| name | shapes-generator-00001 |",
                  "| default size (WxH) | 16x16 |"):
        assert shown in card, shown

    loaded = TextToVideo.from_pretrained(tmp_path / "pipe")  # a re-save (shipping it, say) keeps every card
    loaded.save_pretrained(tmp_path / "shipped", dtype=torch.float16)
    assert front_matter(tmp_path / "shipped")["t2v"]["scores"] == EVAL_SCORES
    assert front_matter(tmp_path / "shipped" / "video_tokenizer")["t2v"]["trained_steps"] == 40


def test_no_card_without_a_history_unless_asked_and_a_stale_one_goes(text, tmp_path):
    pipeline = tiny_pipeline(text)
    pipeline.save_pretrained(tmp_path / "plain")  # nothing known but the configs: today's layout
    assert not list((tmp_path / "plain").rglob(CARD_FILE))
    pipeline.save_pretrained(tmp_path / "carded", model_card=True)
    assert len(list((tmp_path / "carded").rglob(CARD_FILE))) == 3
    assert "Not recorded" in (tmp_path / "carded" / "generator" / CARD_FILE).read_text()

    tokenizer = tiny_model()
    tokenizer.save_pretrained(tmp_path / "tok", model_card=True)
    tokenizer.save_pretrained(tmp_path / "tok", model_card=False)  # a card of other weights would mislead
    assert not (tmp_path / "tok" / CARD_FILE).exists()
    (tmp_path / "tok" / CARD_FILE).write_text("# my notes\n")
    tokenizer.save_pretrained(tmp_path / "tok")  # a README the user wrote stays
    assert (tmp_path / "tok" / CARD_FILE).read_text() == "# my notes\n"
    (tmp_path / "tok" / CARD_FILE).write_text("---\nt2v: [unclosed\n---\n")  # a damaged card: a description only
    assert card_metadata(tmp_path / "tok" / CARD_FILE) == {} and card_metadata(tmp_path / "none") == {}
    assert VideoTokenizer.from_pretrained(tmp_path / "tok").provenance is None


# 2. Hub ids --------------------------------------------------------------------------------------------------
@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """`huggingface_hub.snapshot_download` copying `published[repo_id]` into a cache folder (a snapshot, as the
    real one lays out); the calls it had. The test runs in an empty directory, so `user/...` is no local path."""
    published: dict[str, Path] = {}
    calls: list[dict] = []

    def snapshot_download(repo_id: str, **options) -> str:
        calls.append({"repo_id": repo_id, **options})
        snapshot = tmp_path / "cache" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / "0123abcd"
        if not snapshot.is_dir():
            shutil.copytree(published[repo_id], snapshot)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return SimpleNamespace(published=published, calls=calls)


def test_each_model_loads_from_a_hub_id(fake_hub, tokenizer_run, generator_run, text, tmp_path):
    tokenizer, generator = VideoTokenizer.from_pretrained(tokenizer_run), VideoGenerator.from_pretrained(generator_run)
    pipeline = TextToVideo(tokenizer, generator, text, PipelineInfo(fps=8, size=(16, 16), frames=5))
    for name, model in (("tok", tokenizer), ("gen", generator), ("pipe", pipeline)):
        model.save_pretrained(tmp_path / "published" / name)
        fake_hub.published[f"someone/{name}"] = tmp_path / "published" / name

    loaded = VideoTokenizer.from_pretrained("someone/tok", revision="v1")
    assert same_weights(loaded, tokenizer) and loaded.provenance == tokenizer.provenance
    assert fake_hub.calls[-1]["repo_id"] == "someone/tok" and fake_hub.calls[-1]["revision"] == "v1"
    assert fake_hub.calls[-1]["local_files_only"] is False
    assert same_weights(VideoGenerator.from_pretrained("someone/gen"), generator)
    loaded = TextToVideo.from_pretrained("someone/pipe", local_files_only=True)
    assert fake_hub.calls[-1]["local_files_only"] is True
    assert same_weights(loaded.generator, generator) and same_weights(loaded.video_tokenizer, tokenizer)
    assert loaded.info == pipeline.info and len(fake_hub.calls) == 3


def test_an_existing_directory_is_never_looked_up(fake_hub, text):
    tiny_pipeline(text).save_pretrained(Path("someone") / "pipe")  # a local folder shaped like a hub id wins
    TextToVideo.from_pretrained("someone/pipe")
    assert fake_hub.calls == []


@pytest.mark.parametrize("load", [VideoTokenizer.from_pretrained, VideoGenerator.from_pretrained,
                                  TextToVideo.from_pretrained], ids=["tokenizer", "generator", "pipeline"])
def test_a_hub_id_offline_is_a_one_line_error_saying_how_to_get_it(load, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the real snapshot_download, held to the (empty) cache
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        load("someone/not-cached", cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message and "not found locally: someone/not-cached is no directory here" in message
    assert "HF_HUB_OFFLINE is set" in message and "hf download someone/not-cached --local-dir DIR" in message


def test_hub_failures_are_one_line(fake_hub, monkeypatch):
    def unreachable(repo_id: str, **options):
        raise LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub...\nmore")

    def missing(repo_id: str, **options):
        raise RepositoryNotFoundError("404 Client Error\nRepository Not Found",
                                      response=SimpleNamespace(headers={}, request=None))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(FileNotFoundError, match=r"pipeline not found locally.*could not be reached") as error:
        TextToVideo.from_pretrained("someone/pipe")
    assert "\n" not in str(error.value)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(FileNotFoundError, match="neither a local directory nor a hub repository") as error:
        VideoTokenizer.from_pretrained("someone/tok")
    assert "\n" not in str(error.value)


def test_a_missing_path_that_is_no_hub_id_gives_todays_errors(fake_hub, tmp_path):
    Path("runs").mkdir()  # runs/missing: a local folder's child, not a hub id
    with pytest.raises(FileNotFoundError, match="pipeline directory not found: nothing-here"):
        TextToVideo.from_pretrained("nothing-here")
    with pytest.raises(FileNotFoundError, match="pipeline directory not found: runs/missing"):
        TextToVideo.from_pretrained("runs/missing")
    with pytest.raises(FileNotFoundError, match="tokenizer directory not found"):
        VideoTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no generator in"):
        VideoGenerator.from_pretrained("./someone/gen")
    assert fake_hub.calls == []


@pytest.mark.parametrize("spec, hub", [("user/repo", True), ("my-org/t2v.shapes_v1", True), ("shapes", False),
                                       ("/abs/path", False), ("./user/repo", False), ("a/b/c", False),
                                       ("user/repo/", False), ("user/../repo", False), ("-user/repo", False),
                                       ("user/re--po", False)])
def test_what_reads_as_a_hub_id(spec, hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_hub_id(spec) is hub


# 3. Pushing --------------------------------------------------------------------------------------------------
def test_push_to_hub_uploads_the_saved_directory_with_its_card(text, monkeypatch):
    uploads: list[dict] = []

    class FakeApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            assert exist_ok
            return SimpleNamespace(repo_id=repo_id if "/" in repo_id else f"someone/{repo_id}")

        def upload_folder(self, repo_id, folder_path, **options):
            files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            uploads.append({"repo_id": repo_id, "files": files, "token": self.token, **options,
                            "card": (Path(folder_path) / CARD_FILE).read_text()})
            return f"https://huggingface.co/{repo_id}/commit/1"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = tiny_pipeline(text).push_to_hub("someone/pipe", token="secret", commit_message="first", scores=EVAL_SCORES)
    assert url == "https://huggingface.co/someone/pipe/commit/1"
    upload = uploads[0]
    assert upload["files"] == sorted([CARD_FILE, "pipeline.json", "generator/README.md", "generator/config.json",
                                      "generator/model.safetensors", "text_tokenizer/text.json",
                                      "text_tokenizer/text.model", "video_tokenizer/README.md",
                                      "video_tokenizer/config.json", "video_tokenizer/model.safetensors"])
    assert upload["token"] == "secret" and upload["commit_message"] == "first"
    assert 'TextToVideo.from_pretrained("someone/pipe")' in upload["card"] and REPO_PLACEHOLDER not in upload["card"]
    assert "| seen | 8 | 0.75 |" in upload["card"]
    tiny_model().push_to_hub("tok")  # the hub puts a bare name under the user's namespace
    assert uploads[1]["files"] == [CARD_FILE, "config.json", "model.safetensors"]
    assert uploads[1]["repo_id"] == "someone/tok" and 'from_pretrained("someone/tok")' in uploads[1]["card"]


def test_the_shipped_pipeline_carries_cards_with_its_evaluation():
    from t2v.recipes.shipped import shipped_pipelines

    directory = shipped_pipelines()["shapes"]
    for folder in (directory, directory / "video_tokenizer", directory / "generator"):
        assert front_matter(folder)["library_name"] == "t2v", folder
    pipeline = TextToVideo.from_pretrained(directory)
    assert pipeline.provenance.scores["seen"]["num"] == 256  # `t2v eval shapes shapes --num 256`
    assert pipeline.generator.provenance.training["command"] == "t2v recipe run shapes --out RUN"
