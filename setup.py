"""Packaging: each top-level folder installs as `t2v.<folder>` (tokenizer/ → t2v.tokenizer, …), with every package
under it found rather than listed, so a new recipe folder needs no entry. Everything else is in setup.cfg."""
from setuptools import find_packages, setup

FOLDERS = ("core", "tokenizer", "generator", "cli", "recipes", "serve")

packages = find_packages(include=[name for folder in FOLDERS for name in (folder, f"{folder}.*")])
setup(package_dir={f"t2v.{folder}": folder for folder in FOLDERS}, packages=[f"t2v.{name}" for name in packages])
