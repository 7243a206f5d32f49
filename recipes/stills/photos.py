"""The photographs of the stills recipe: found at run time inside the installed scikit-image and scikit-learn
packages (nothing is copied into the repository), each with a stable name, a noun phrase for captions, and its split.

Only images that ship in the wheels are listed: scikit-image fetches some of its `skimage.data` images from the
network with pooch (brain, cells3d, eagle, kidney, lily, skin, …); those are left out, and so are its synthetic
images (checkerboard, colorwheel, logo, binary blobs, the phantom), its masks (horse), the cell hologram (almost
flat), `chelsea` (the same picture as `cat`), and the ones whose short side is under 256 px (page, text,
microaneurysms, the 25 px faces of lfw_subset). Each photo is RGB uint8; grey ones get three equal channels;
a short side above 512 px is reduced to 512 (area averaging) when loaded.

The held-out rule: within each colour class (RGB, grey), the photos sorted by name, every fourth from the second
(index % 4 == 1) is held out: cat, distant galaxies (hubble), stained tissue, the cameraman and gravel (5 of 17).
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_SIDE = 512  # px: the short side a photo is reduced to when loaded
SPLITS = ("seen", "heldout")


@dataclass(frozen=True)
class Photo:
    """One photograph: its stable `name`, the noun phrase captions use, whether it is grey, and where it ships:
    `loader` "module:function" and, for a function returning several images, the `item` to take (or a file name
    for sklearn's `load_sample_image`)."""

    name: str
    phrase: str
    grey: bool
    loader: str
    item: int | str | None = None


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "an astronaut", False, "skimage.data:astronaut"),
    Photo("brick", "a brick wall", True, "skimage.data:brick"),
    Photo("camera", "a cameraman", True, "skimage.data:camera"),
    Photo("cat", "a cat", False, "skimage.data:cat"),
    Photo("china", "a chinese pagoda", False, "sklearn.datasets:load_sample_image", "china.jpg"),
    Photo("clock", "a clock", True, "skimage.data:clock"),
    Photo("coffee", "a cup of coffee", False, "skimage.data:coffee"),
    Photo("coins", "old coins", True, "skimage.data:coins"),
    Photo("flower", "a flower", False, "sklearn.datasets:load_sample_image", "flower.jpg"),
    Photo("grass", "grass", True, "skimage.data:grass"),
    Photo("gravel", "gravel", True, "skimage.data:gravel"),
    Photo("hubble", "distant galaxies", False, "skimage.data:hubble_deep_field"),
    Photo("moon", "the surface of the moon", True, "skimage.data:moon"),
    Photo("motorcycle", "a motorcycle", False, "skimage.data:stereo_motorcycle", 0),
    Photo("retina", "a retina", False, "skimage.data:retina"),
    Photo("rocket", "a rocket", False, "skimage.data:rocket"),
    Photo("tissue", "stained tissue", False, "skimage.data:immunohistochemistry"),
)
NAMES = tuple(photo.name for photo in PHOTOS)
_BY_NAME = {photo.name: photo for photo in PHOTOS}


def photo(name: str) -> Photo:
    """The photo called `name`; an unknown name lists the known ones."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown photo {name!r}: use one of {', '.join(NAMES)}")
    return _BY_NAME[name]


def split_of(name: str) -> str:
    """'heldout' or 'seen', by the rule: in each colour class sorted by name, index % 4 == 1 is held out."""
    grey = photo(name).grey
    same = sorted(p.name for p in PHOTOS if p.grey == grey)
    return "heldout" if same.index(name) % 4 == 1 else "seen"


def names_of_split(split: str) -> tuple[str, ...]:
    """The photo names of 'seen', 'heldout' or 'all', in catalogue order."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"unknown split {split!r}: use seen, heldout or all")
    return tuple(name for name in NAMES if split == "all" or split_of(name) == split)


def _raw(entry: Photo) -> np.ndarray:
    module_name, _, function_name = entry.loader.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        image = function(entry.item) if isinstance(entry.item, str) else function()
    except (ImportError, OSError, ValueError) as error:
        package = "scikit-learn" if module_name.startswith("sklearn") else "scikit-image"
        raise RuntimeError(f"photo {entry.name!r} cannot be loaded from {entry.loader} ({error}): install the "
                           f"package with it (pip install {package})") from None
    return np.asarray(image[entry.item] if isinstance(entry.item, int) else image)


@functools.lru_cache(maxsize=None)
def load(name: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) pixels of photo `name` (read-only; loaded once per process), the short side at most
    `MAX_SIDE`."""
    image = _raw(photo(name))
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)
    if min(image.shape[:2]) > MAX_SIDE:
        factor = MAX_SIDE / min(image.shape[:2])
        size = (round(image.shape[0] * factor), round(image.shape[1] * factor))
        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        pixels = F.interpolate(pixels, size=size, mode="area")
        image = pixels[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    image.setflags(write=False)
    return image
