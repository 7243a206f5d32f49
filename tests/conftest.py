"""Shared fixtures of the tokenizer tests: tiny model configs and one tiny shapes dataset per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from t2v.tokenizer.model import VideoTokenizer
import dataclasses

from t2v.tokenizer.config import QuantizerConfig, TokenizerConfig, preset

QUANTIZERS = ("fsq", "lfq", "vq")
QUANTIZER_FIELDS = {f.name for f in dataclasses.fields(QuantizerConfig)}

# Tiny convolutions gain nothing from intra-op threads, and on a busy machine OpenMP's spinning threads make them
# ~10× slower: the tests run single-threaded (the distributed test's ranks get OMP_NUM_THREADS=1 too).
torch.set_num_threads(1)


def tiny_config(quantizer: str = "fsq", **overrides) -> TokenizerConfig:
    """A tokenizer small enough for CPU tests: 4 levels of 8–16 channels, one res block, small codebooks."""
    settings = dict(kind=quantizer, fsq_levels=(4, 4, 4), lfq_bits=6, vq_codebook_size=32, vq_dim=4)
    settings.update({key: overrides.pop(key) for key in list(overrides) if key in QUANTIZER_FIELDS})
    values = dict(channels=(8, 8, 16, 16), num_res_blocks=1, quantizer=QuantizerConfig(**settings))
    values.update(overrides)
    return preset("tiny", **values)


def tiny_model(quantizer: str = "fsq", seed: int = 0, **overrides) -> VideoTokenizer:
    torch.manual_seed(seed)
    return VideoTokenizer(tiny_config(quantizer, **overrides)).eval()


def random_video(batch: int = 1, frames: int = 9, height: int = 16, width: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded (B, 3, T, H, W) clip of uniform noise in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, height, width, generator=generator) * 2 - 1


@pytest.fixture(scope="session", autouse=True)
def torch_extensions_dir(tmp_path_factory):
    """One TORCH_EXTENSIONS_DIR per test run, inherited by torchrun ranks: an op DeepSpeed JIT-compiles on CPU is
    built at most once per run (generator/train.py avoids the one it would build; this bounds any other)."""
    if "TORCH_EXTENSIONS_DIR" not in os.environ:  # a directory the user chose persists across runs: keep it
        os.environ["TORCH_EXTENSIONS_DIR"] = str(tmp_path_factory.getbasetemp() / "torch_extensions")
    return os.environ["TORCH_EXTENSIONS_DIR"]


@pytest.fixture(scope="session")
def shapes_index(tmp_path_factory):
    """index.jsonl of 24 tiny shapes clips (9 frames, 32×32) with seen/heldout splits."""
    from t2v.recipes.shapes.dataset import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "shapes", num=24, frames=9, size=(32, 32), seed=0)


def initialise_codebook(model: VideoTokenizer, video: torch.Tensor) -> VideoTokenizer:
    """One training-mode forward, so a VQ codebook has seen data (EMA update); FSQ and LFQ have no state to change."""
    model.train()
    with torch.no_grad():
        model(video)
    return model.eval()


def run_main(args, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run the `t2v` console entry point with `args`; its exit code, stdout and stderr."""
    from t2v.cli.main import main

    monkeypatch.setattr("sys.argv", ["t2v", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


# --- generator ---
def _captions() -> list[str]:
    from t2v.recipes.shapes.dataset import all_captions

    return [caption.text for caption in all_captions()]


CAPTIONS = _captions()


def tiny_generator(text_size: int = 100, codebook_size: int = 64, seed: int = 0, **overrides):
    """A 2-layer, 64-wide generator with random weights, conditioned on latent grids 2×2 and 2×3 (h, w) at 8 fps
    (and 16 fps for tests of rates)."""
    from t2v.generator.model import VideoGenerator
    from t2v.generator.config import GeneratorConfig

    torch.manual_seed(seed)
    sizes = dict(layers=2, hidden=64, heads=2, kv_heads=2, intermediate=128, max_text_len=10, sizes=[[2, 2], [2, 3]],
                 rates=[8.0, 16.0])
    config = GeneratorConfig(**{**sizes, **overrides}, text_size=text_size, codebook_size=codebook_size)
    return VideoGenerator(config).eval()


@pytest.fixture(scope="session")
def text():
    """A caption tokenizer trained on the 256 shapes captions."""
    from t2v.generator.text import TextTokenizer

    return TextTokenizer.train(CAPTIONS, vocab_size=100, max_len=10)


def tiny_pipeline(text):
    """Random tiny tokenizer + generator: 5-frame 16×16 clips (2 latent frames of 2×2 codes)."""
    from t2v.generator.pipeline import PipelineInfo, TextToVideo

    video_tokenizer = tiny_model()
    generator = tiny_generator(text_size=text.size, codebook_size=video_tokenizer.codebook_size)
    return TextToVideo(video_tokenizer, generator, text, PipelineInfo(fps=8, size=(16, 16), frames=5))


def load_bench(name: str, monkeypatch: pytest.MonkeyPatch):
    """The module of script `bench/<name>.py`, loaded as the scripts run: bench/ on sys.path (they import their
    siblings) and the module registered under its name (dataclasses look their module up there)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    monkeypatch.syspath_prepend(str(path.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def run_torchrun(script: str, args: list[str], directory, timeout: int = 240) -> None:
    """Run the Python source `script` as 2 CPU ranks under torchrun (one thread each) in `directory`."""
    import socket
    import subprocess
    import sys

    path = directory / "rank_main.py"
    path.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={port}", str(path), *args]
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def tiny_shards(directory, clips: int, seed: int = 0):
    """Token shards of `clips` clips of shapes captions, 64 codes, latent grid (2, 4, 4): each clip's codes are a ramp
    offset by its caption's number, so a generator can learn them."""
    import numpy as np

    from t2v.recipes.shapes.dataset import all_captions, split_of
    from t2v.tokenizer.shards import ShardWriter

    captions, rng = all_captions(), np.random.default_rng(seed)
    writer = ShardWriter(directory, 64)
    for i in range(clips):
        caption = captions[int(rng.integers(len(captions)))]
        codes = (np.arange(32).reshape(2, 4, 4) + captions.index(caption)) % 64  # (t, h, w)
        writer.add(codes, {"caption": caption.text, "split": split_of(caption), "path": f"clip{i}.mp4"})
    return writer.close({"fps": 8.0})
