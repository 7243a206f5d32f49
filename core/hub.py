"""Hub-ready checkpoints: model cards, hub ids, downloads and uploads (`huggingface_hub`, imported when used).

A saved model directory may hold `README.md`, its model card: YAML front matter the Hugging Face hub reads
(`library_name: t2v`, `license`, `tags`, and a `t2v:` section with what the card knows in machine-readable form),
then what the weights were trained on, their config and their measured scores. What a card knows is a
`Provenance`: read from a training run directory (its `config.json` holds the training config, `metrics.jsonl` the
evaluations, `model.safetensors` the step of the exported weights) or from the `t2v:` section of an earlier card,
so a model loaded from a run and saved again (a pipeline assembled, a pipeline shipped) keeps its history.

`from_pretrained` takes a local directory as before, or a hub id (`user/repo`): `pretrained_dir` downloads it with
`huggingface_hub.snapshot_download` into the hub's cache. A string that is neither an existing directory nor
shaped like a hub id is returned as a path, for the loader's own "not found" error. `push` uploads what a
`save_pretrained` writes (the same conventions as `huggingface_hub.ModelHubMixin`, whose `push_to_hub` keywords it
takes).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from t2v.core.atomic import atomic_write_text
from t2v.core.config_io import to_dict
from t2v.core.runlog import read_metrics

CARD_FILE = "README.md"
LIBRARY = "t2v"
LICENSE = "mit"  # the project's; edit the card's front matter to publish weights under another
REPO_PLACEHOLDER = "<hub id or folder>"  # the card's usage line; `push` writes the repository's id instead
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# The training settings a card lists first (dotted keys of a run's config.json; the rest are under "details").
_HEADLINE = ("recipe", "command", "shipped", "name", "steps", "batch_size", "grad_accum", "image_steps",
             "decoder_steps", "data.index", "data.drawn", "data.shards", "data.train_split", "data.eval_split",
             "data.size", "data.num_frames", "data.fps", "data.window", "optim.lr", "precision", "zero_stage", "seed",
             "tokenizer_dir")


# 1. Hub ids and downloads ------------------------------------------------------------------------------------
def is_hub_id(spec: str | Path) -> bool:
    """Whether `spec` reads as a hub repository id (`namespace/name`) rather than a local path: one slash, the
    hub's characters, and no existing local folder named by its first part (`runs/missing` is a missing path)."""
    text = str(spec)
    if not _HUB_ID.match(text) or ".." in text or "--" in text or text.endswith(".git"):
        return False
    return not Path(text.split("/")[0]).is_dir()


def offline() -> bool:
    """Whether the hub is switched off (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE, read now, not at import)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def pretrained_dir(spec: str | Path, what: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
                   token: str | bool | None = None, force_download: bool = False,
                   local_files_only: bool = False) -> Path:
    """The local directory `spec` names: an existing directory as it is; a hub id downloaded (or found in the hub's
    cache) by `huggingface_hub.snapshot_download` with these options; anything else as a path, for the caller's
    "not found" error. A hub id that cannot be had is a one-line FileNotFoundError saying why and how to get it
    (`what` names the kind of model in it)."""
    path = Path(spec)
    if path.is_dir() or not is_hub_id(spec):
        return path
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, \
        RevisionNotFoundError

    repo_id, cut_off = str(spec), local_files_only or offline()
    fetch = f"`hf download {repo_id} --local-dir DIR` where the hub is reachable, then pass DIR"
    try:
        return Path(huggingface_hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token, force_download=force_download,
            local_files_only=cut_off, library_name=LIBRARY))
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{what} {repo_id}: the hub repository has no revision {revision!r}; name a "
                                "branch, tag or commit it has") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{what} not found: {repo_id} is neither a local directory nor a hub repository you "
                                "can read (check the path or id; a private or gated one needs `hf auth login`)") \
            from None
    except LocalEntryNotFoundError:
        why, fix = (("local_files_only is set", "or drop local_files_only") if local_files_only else
                    ("HF_HUB_OFFLINE is set", "or unset HF_HUB_OFFLINE") if cut_off else
                    ("the hub could not be reached (no network?)", "or try again online"))
        raise FileNotFoundError(f"{what} not found locally: {repo_id} is no directory here nor in the hub's cache, "
                                f"and {why}; download it with {fetch}, {fix}") from None
    except HfHubHTTPError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(f"{what} {repo_id} could not be downloaded from the hub ({first}); try again, or "
                                f"download it with {fetch}") from None


def push(save: Callable[[Path], object], repo_id: str, *, commit_message: str = "Upload with t2v",
         private: bool | None = None, token: str | None = None, branch: str | None = None,
         create_pr: bool | None = None) -> str:
    """Upload what `save(folder)` writes to the hub repository `repo_id` (created if missing) in one commit, the
    card's usage line naming `repo_id`; the commit's URL. `huggingface_hub.ModelHubMixin.push_to_hub`'s keywords."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id  # `name` → `user/name`
    with tempfile.TemporaryDirectory(prefix="t2v-push-") as tmp:
        folder = Path(tmp) / "model"
        save(folder)
        for card in folder.rglob(CARD_FILE):
            card.write_text(card.read_text(encoding="utf-8").replace(REPO_PLACEHOLDER, repo_id), encoding="utf-8")
        return str(api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                                     revision=branch, create_pr=create_pr))


# 2. What a card knows ----------------------------------------------------------------------------------------
@dataclass
class Provenance:
    """How weights were made and how they scored: a run's training config (without its `model` section), the step
    of the exported weights, and the last held-out evaluation (a metrics line's `eval_*` values and step, or a
    recipe evaluation's scores per split)."""

    training: dict[str, Any] = field(default_factory=dict)
    trained_steps: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def with_scores(self, scores: Mapping[str, Any] | str | Path | None) -> "Provenance":
        """A copy with `scores` (a mapping, or an eval.json whose "scores" it takes) instead, when given."""
        return self if scores is None else dataclasses.replace(self, scores=read_scores(scores))


def read_scores(scores: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Scores to record: a mapping as it is (numbers made plain), or a recipe's eval.json (its "scores")."""
    if not isinstance(scores, Mapping):
        path = Path(scores)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"scores file not found: {path} (pass a recipe's eval.json, e.g. the one "
                                    "`t2v eval` writes)") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path}: not valid JSON; pass a recipe's eval.json (`t2v eval` writes one)") from None
        scores = values.get("scores", values) if isinstance(values, dict) else None
        if not isinstance(scores, dict):
            raise ValueError(f"{path}: expected a JSON object of scores (an eval.json's \"scores\")")
    return plain(dict(scores))


def read_provenance(directory: str | Path, kind: str) -> Provenance | None:
    """What is known of the weights in `directory`: from a training run (config.json holding a "model" section) or
    from the `t2v:` section of a card of this `kind`; None when nothing is. Never raises for a damaged file: a card
    is a description, and loading the model reports damage of its own files."""
    from t2v.core.checkpoint import exported_step  # torch: imported when a model is loaded anyway

    directory = Path(directory)
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        step = exported_step(directory)
        return Provenance(training={k: v for k, v in config.items() if k != "model"}, trained_steps=step,
                          scores=last_evaluation(directory / "metrics.jsonl", step))
    known = card_metadata(directory / CARD_FILE).get(LIBRARY)
    if not isinstance(known, dict) or known.get("kind") != kind:
        return None
    values = {name: known.get(name) for name in ("training", "trained_steps", "scores")}
    return Provenance(training=values["training"] if isinstance(values["training"], dict) else {},
                      trained_steps=values["trained_steps"] if isinstance(values["trained_steps"], int) else None,
                      scores=values["scores"] if isinstance(values["scores"], dict) else {})


def last_evaluation(path: Path, step: int | None = None) -> dict[str, Any]:
    """The `eval_*` values and step of the last metrics line holding any, at or before `step` (the exported
    weights'); {} when none, or the file is missing or damaged."""
    try:
        records = read_metrics(path)
    except (OSError, ValueError):
        return {}
    for record in reversed(records):
        values = {k: v for k, v in record.items() if k.startswith("eval_")}
        if values and (step is None or not isinstance(record.get("step"), int) or record["step"] <= step):
            return {"step": record.get("step"), **values}
    return {}


def card_metadata(path: Path) -> dict[str, Any]:
    """The YAML front matter of a card at `path` ({} when there is none, or it does not parse)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    found = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    try:
        values = yaml.safe_load(found.group(1)) if found else None
    except yaml.YAMLError:
        return {}
    return values if isinstance(values, dict) else {}


# 3. Writing a card ------------------------------------------------------------------------------------------
def wants_card(model_card: bool | None, *known: Provenance | None) -> bool:
    """A save writes a card when asked to (True), never when asked not to (False), and by default (None) when
    there is something to tell beyond the config: a training history or scores."""
    return model_card if model_card is not None else any(p is not None for p in known)


def write_card(directory: str | Path, text: str | None) -> None:
    """Write `text` as the directory's card (atomically); None removes a t2v card left by an earlier save (a card
    the user wrote, without our front matter, is kept)."""
    path = Path(directory) / CARD_FILE
    if text is not None:
        atomic_write_text(path, text)
    elif LIBRARY in card_metadata(path):
        path.unlink()


def model_card(kind: str, title: str, summary: str, usage: str, tags: list[str], facts: Mapping[str, Any],
               config: Any = None, provenance: Provenance | None = None, pipeline_tag: str | None = None,
               training: str | None = None, scores: str | None = None) -> str:
    """A model card: front matter (library, license, tags, the `provenance` as a `t2v:` section), a title and
    `summary`, the `usage` code, then Training, Config (`facts` first, then every key of `config`) and Scores
    (`training` and `scores`: markdown instead of the provenance's, a pipeline's of its parts)."""
    known = provenance or Provenance()
    settings = {} if config is None else dict(config) if isinstance(config, Mapping) else to_dict(config)
    meta: dict[str, Any] = {"library_name": LIBRARY, "license": LICENSE,
                            "tags": list(dict.fromkeys([LIBRARY, *tags]))}
    if pipeline_tag:
        meta["pipeline_tag"] = pipeline_tag
    meta[LIBRARY] = plain({"kind": kind, "training": known.training, "trained_steps": known.trained_steps,
                           "scores": known.scores})
    parts = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "", f"# {title}", "",
             summary, "", "## Use", "", "```python", usage.strip(), "```", "",
             "## Training", "", training or training_text(known), "", "## Config", "",
             table({**facts, **flatten(settings)}, ("setting", "value")), "",
             "## Scores", "", scores or scores_text(known.scores)]
    return "\n".join(parts) + "\n"


def training_text(known: Provenance) -> str:
    """The card's Training section: the headline settings of the run, and its whole training config folded."""
    if not known.training:
        return "Not recorded: these weights were saved without the config of the run that trained them."
    settings = flatten(known.training)
    headline = {key: settings[key] for key in _HEADLINE if settings.get(key) not in (None, "", [])}
    if known.trained_steps is not None:
        headline["exported at step"] = known.trained_steps
    if set(settings) <= set(headline):
        return table(headline, ("setting", "value"))
    return "\n".join([table(headline, ("setting", "value")), "",
                      "<details><summary>The run's whole training config</summary>", "", "```json",
                      json.dumps(plain(known.training), indent=2), "```", "", "</details>"])


def scores_text(scores: Mapping[str, Any]) -> str:
    """The card's Scores section: one row per split for a recipe's evaluation, else one per metric."""
    if not scores:
        return "Not measured: no held-out evaluation was recorded with these weights."
    if all(isinstance(value, Mapping) for value in scores.values()):
        columns = list(dict.fromkeys(key for row in scores.values() for key in row))
        lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(cell(row.get(c, "")) for c in columns) + " |"
                  for name, row in scores.items()]
        return "\n".join(lines)
    step = scores.get("step")
    where = f"The held-out evaluation at step {step} (the run's metrics.jsonl)" if step is not None else "Scores"
    return f"{where}:\n\n" + table({k: v for k, v in scores.items() if k != "step"}, ("metric", "value"))


def table(rows: Mapping[str, Any], header: tuple[str, str] = ("", "")) -> str:
    """A two-column markdown table of `rows` under `header`."""
    return "\n".join([f"| {header[0]} | {header[1]} |", "|---|---|",
                      *(f"| {key} | {cell(value)} |" for key, value in rows.items())])


def cell(value: Any) -> str:
    """A value as a table cell: whole floats as integers, others to 4 significant digits, lists compactly, `|`
    escaped."""
    if isinstance(value, float):
        text = "n/a" if not math.isfinite(value) else str(int(value)) if value.is_integer() else f"{value:.4g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(plain(value), separators=(", ", ": "))
    else:
        text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (`data.size`), lists kept whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(value: Any) -> Any:
    """`value` as JSON/YAML-safe data: tuples as lists, numpy numbers as numbers, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if hasattr(value, "item"):  # a numpy or torch scalar
        return plain(value.item())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def parameter_count(count: int) -> str:
    """1234567 → '1.23 M'."""
    return f"{count / 1e6:.2f} M" if count >= 1e5 else f"{count / 1e3:.1f} k"
