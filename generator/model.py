"""`VideoGenerator`: the decoder-only transformer that predicts video ids from a caption
(its `GeneratorConfig`: config.py).

The stack is `transformers`' Qwen2-VL text decoder: its attention, SwiGLU MLP, RMSNorm and multimodal rotary
embedding, which rotates separate bands of each head's dimensions by the t, h and w positions (`vocab.py` gives
them). What is ours: the id layout, the positions, the output head over video codes only, the explicit
`KVCache`, the attention mask and the loop over the library's layers (its model forward adds output capturing and
mask building to every call, a large share of a small model's decode step; the sampler passes rotary cos/sin it
computed once per clip). Sizes follow the LlamaGen ladder (B 111M, L 343M, XL 775M with a 16k codebook).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import Qwen2VLTextConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLTextModel

from t2v.core import hub
from t2v.core.atomic import atomic_file
from t2v.core.checkpoint import load_weights, weights_state
from t2v.core.config_io import write_config
from t2v.generator.attention import causal_mask
from t2v.generator.cache import KVCache
from t2v.generator.config import GeneratorConfig
from t2v.generator.loss import linear_cross_entropy
from t2v.generator.vocab import NULL, PAD

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


MIN_TRANSFORMERS = "5.24"  # setup.cfg's bound: the first release whose decoder layers take `cache=`


def check_transformers() -> None:
    """A RuntimeError naming the fix when the installed `transformers` decoder layer takes no `cache=` argument:
    older releases call it `past_key_values` and would silently drop ours (decoding would see the new id only)."""
    import inspect

    import transformers
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLDecoderLayer

    if "cache" not in inspect.signature(Qwen2VLDecoderLayer.forward).parameters:
        raise RuntimeError(f"transformers {transformers.__version__} is too old for t2v's KV cache: install "
                           f"transformers>={MIN_TRANSFORMERS} (pip install -U 'transformers>={MIN_TRANSFORMERS}')")


def decoder_config(config: GeneratorConfig) -> Qwen2VLTextConfig:
    """The `transformers` decoder config of a generator config."""
    decoder = Qwen2VLTextConfig(
        vocab_size=config.vocab.size, hidden_size=config.hidden, intermediate_size=config.intermediate,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
        max_position_embeddings=4096, rms_norm_eps=1e-6, pad_token_id=PAD, bos_token_id=None,
        eos_token_id=None, rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta,
                                            "mrope_section": config.rotary_split})
    decoder._attn_implementation = "sdpa"
    return decoder


class CodeDigits(nn.Module):
    """Factorized vectors of FSQ codes: code c is the digits d_i = (c // basis_i) % levels_i (the quantizer's own
    order), and its vector is the sum of one learned row per digit. Added to each code's own embedding and output
    vector, it gives codes that share a level on some latent axis a shared part: what the model learns about one
    code carries over to its neighbours in the quantizer's grid instead of being learned code by code."""

    def __init__(self, levels: list[int], hidden: int) -> None:
        super().__init__()
        sizes = torch.tensor(levels)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0)
        offsets = torch.cumsum(torch.tensor([0, *levels[:-1]]), dim=0)
        codes = torch.arange(math.prod(levels))[:, None]
        self.register_buffer("rows", codes // basis % sizes + offsets, persistent=False)  # (C, digits)
        self.table = nn.Embedding(int(sizes.sum()), hidden)
        nn.init.normal_(self.table.weight, std=0.02)

    def vectors(self) -> torch.Tensor:
        """(C, hidden): every code's factorized vector."""
        return self.table(self.rows).sum(dim=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (any shape) → their factorized vectors (…, hidden)."""
        return self.table(self.rows[codes]).sum(dim=-2)


class CodeHead(nn.Module):
    """The output layer over the video codes: logits, or with labels the training loss, computed a chunk of ids at
    a time (loss.py: no full logits tensor). A module of its own, so ZeRO-3 gathers its weight when it runs."""

    def __init__(self, hidden: int, codebook_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(codebook_size, hidden))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's draw, overwritten: a seed gives the
        nn.init.normal_(self.weight, std=0.02)  # initial weights it gave when this layer was an nn.Linear

    def forward(self, hidden: torch.Tensor, weight: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (…, C) of `hidden` (…, H) under `weight` (default: this layer's), or with `labels` (…) the mean
        cross-entropy over those that are not IGNORE (-100)."""
        weight = self.weight if weight is None else weight
        if labels is None:
            return hidden @ weight.T
        return linear_cross_entropy(hidden.flatten(0, -2), weight, labels.flatten())


class VideoGenerator(nn.Module):
    """Decoder over `[specials | text | video]` ids with 3D rotary positions; logits over the video codes."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        check_transformers()
        self.config = config
        self.vocab = config.vocab
        self.decoder = Qwen2VLTextModel(decoder_config(config))
        self.head = CodeHead(config.hidden, config.codebook_size)
        levels = config.code_levels
        self.digits_in = CodeDigits(levels, config.hidden) if levels else None
        self.digits_out = CodeDigits(levels, config.hidden) if levels else None
        self.text_in = self.null_text = None
        if config.text_encoder:  # a frozen encoder's states in the caption slots (text_encoder.py)
            if config.text_encoder_width < 1:
                raise ValueError(f"text_encoder_width is unknown for the text encoder {config.text_encoder}: build "
                                 "the config with text_encoder.with_encoder(config), which reads it")
            self.text_in = nn.Linear(config.text_encoder_width, config.hidden)
            nn.init.normal_(self.text_in.weight, std=0.02)
            nn.init.zeros_(self.text_in.bias)
            self.null_text = nn.Parameter(torch.randn(config.max_text_len, config.hidden) * 0.02)

    def output_weight(self) -> torch.Tensor:
        """(C, hidden) output vectors of the codes: the head's rows plus their factorized digit vectors. Without
        autograd (sampling: one id per forward) the sum is kept until either weight changes in place (an optimizer
        step bumps the tensors' version counters) or the model switches between train and eval mode (DeepSpeed's
        ZeRO optimizers write the weights through `.data`, which bumps no counter: its evaluation would read the
        weights of the step before), so decoding does not rebuild it for every id."""
        weights = (self.head.weight, self.digits_out.table.weight)
        if torch.is_grad_enabled():
            return weights[0] + self.digits_out.vectors()
        key = tuple((id(w), w._version, w.device, w.dtype) for w in weights)
        if getattr(self, "_output_cache", (None,))[0] != key:
            self._output_cache = (key, weights[0] + self.digits_out.vectors())
        return self._output_cache[1]

    def train(self, mode: bool = True) -> "VideoGenerator":
        """As nn.Module's; also forgets the kept output vectors (`output_weight`)."""
        self.__dict__.pop("_output_cache", None)
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # noqa: D102 - nn.Module API behind .to/.half/.bfloat16
        """As nn.Module's, but the rotary frequencies stay fp32 whatever dtype the weights take: in bf16 they turn
        a position by angles off by up to 0.4% of it (the library keeps them as buffers, so .to() casts them)."""
        super()._apply(fn, recurse)
        rotary = self.decoder.rotary_emb
        if rotary.inv_freq.dtype != torch.float32:
            exact, _ = rotary.compute_default_rope_parameters(rotary.config)
            rotary.inv_freq = exact.to(rotary.inv_freq.device)
            rotary.original_inv_freq = exact.clone().to(rotary.inv_freq.device)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `capacity` ids, on this model's device and dtype."""
        weight = self.head.weight
        return KVCache(self.config.layers, batch, self.config.kv_heads, self.config.head_dim, capacity,
                       dtype=weight.dtype, device=weight.device)

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary (cos, sin), each (B or 1, L, head_dim), of positions (3, L) or (B, 3, L) by the library's
        multimodal rotary embedding (computed in fp32, given in `dtype`, default the weights'): computed once,
        they serve any slice of the sequence (the sampler's ids)."""
        positions = positions.reshape(-1, 3, positions.shape[-1]).permute(1, 0, 2)  # (B, 3, L) -> (3, B, L)
        weight = self.head.weight
        like = torch.empty(0, dtype=dtype or weight.dtype, device=weight.device)  # the library reads its dtype only
        return self.decoder.rotary_emb(like, positions.to(weight.device))

    def caption_slots(self, ids: torch.Tensor, hidden: torch.Tensor, text: torch.Tensor | None,
                      text_mask: torch.Tensor | None) -> torch.Tensor:
        """The embeddings (B, L, hidden) of ids (B, L) that begin with the prefix, with its caption slots read from
        a text encoder: its states `text` (B, max_text_len, width) projected where `text_mask` is True (elsewhere
        the PAD embedding stays), and the learned null caption in the rows whose prefix holds NULL."""
        slots = slice(1, 1 + self.config.max_text_len)
        null = (ids[:, 1] == NULL)[:, None, None]
        caption = self.null_text.to(hidden.dtype).expand(ids.shape[0], -1, -1)
        if text is not None:
            real = text_mask.to(hidden.device)[..., None].bool()
            states = torch.where(real, text.to(device=hidden.device, dtype=self.text_in.weight.dtype), 0)
            caption = torch.where(null, caption, torch.where(real, self.text_in(states).to(hidden.dtype),
                                                             hidden[:, slots]))
        elif not null.all():
            raise ValueError("this generator reads a text encoder's states in its caption slots: pass text= and "
                             "text_mask= (TextEncoder.encode), or the null caption")
        return torch.cat([hidden[:, :slots.start], caption, hidden[:, slots.stop:]], dim=1)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None, cache: KVCache | None = None,
                logits_from: int = 0, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                attention: torch.Tensor | None = None, keep: int | None = None,
                guesses: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L - logits_from, codebook_size) for ids (B, L) at positions (3, L) or (B, 3, L), or at the
        precomputed `rotary` of those positions.

        `attention` (B or 1, 1, L, cached + L) says which ids each one attends to (generator/attention.py); by
        default causally. With a cache, the ids follow the cached ones and the cache keeps the first `keep` of
        them (default: all; the others, queries, are written past its end and forgotten). Where `guesses` (B, L) is
        True the id is a guess of a query place (the code one latent frame earlier), marked by the MASK vector.
        With `labels` (B, L - logits_from; IGNORE where none) the mean cross-entropy instead of the logits, never
        materialising them whole (loss.py). A generator that reads a text encoder takes its states `text` (B,
        max_text_len, width) and `text_mask` (B, max_text_len) with the ids that begin with the prefix (those of an
        empty cache: `caption_slots`).
        """
        length = ids.shape[1]
        rotary = rotary if rotary is not None else self.rotary(positions)
        past = cache.length if cache is not None else 0
        mask = attention if attention is not None else causal_mask(length, past + length, ids.device)
        hidden = self.decoder.embed_tokens(ids)
        if self.digits_in is not None:
            video = self.vocab.is_video(ids)
            codes = torch.where(video, ids - self.vocab.video_start, 0)
            hidden = hidden + self.digits_in(codes) * video[..., None]
        if guesses is not None:
            hidden = hidden + guesses[..., None] * self.decoder.embed_tokens.weight[self.vocab.mask_id]
        if self.text_in is not None and past == 0:
            hidden = self.caption_slots(ids, hidden, text, text_mask)
        for layer in self.decoder.layers:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, cache=cache)
        if cache is not None:
            cache.advance(length if keep is None else keep)
        hidden = self.decoder.norm(hidden[:, logits_from:])
        weight = None if self.digits_out is None else self.output_weight()
        return self.head(hidden, weight, labels)

    # --- checkpoints ---
    provenance: hub.Provenance | None = None  # what the card tells of the training (from_pretrained reads it)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None, *,
                        model_card: bool | None = None) -> Path:
        """Write config.json + model.safetensors (each atomically): enough to rebuild the model; `dtype` stores the
        parameters in it (e.g. torch.float16 to halve the file). `README.md`, the model card (training, config,
        held-out loss; core/hub.py), is written when `model_card` is True, or by default when the training is
        known (a generator loaded from a run directory or a carded directory)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = weights_state(self, dtype)
        with atomic_file(directory / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        write_config(directory / CONFIG_FILE, self.config)
        hub.write_card(directory, self.model_card() if hub.wants_card(model_card, self.provenance) else None)
        return directory

    def model_card(self) -> str:
        """The generator's model card (README.md): what it was trained on, its config, its held-out loss."""
        config = self.config
        facts = {"parameters": hub.parameter_count(sum(p.numel() for p in self.parameters())),
                 "decoding": config.decoding, "video codes": config.codebook_size,
                 "caption pieces": config.text_size, "latent grids (h, w)": config.sizes,
                 "frame rates": config.rates}
        if config.text_encoder:
            facts["text encoder"] = f"frozen, {config.text_encoder_width}-wide states projected into the prefix"
        usage = ("from t2v.generator.model import VideoGenerator\n\n"
                 f"generator = VideoGenerator.from_pretrained(\"{hub.REPO_PLACEHOLDER}\")\n"
                 "# prompts → videos: t2v.generator.pipeline.TextToVideo joins it with its video tokenizer and "
                 "caption tokenizer")
        summary = (f"The decoder-only transformer of t2v ({config.layers} layers, width {config.hidden}): it predicts "
                   f"a video's codes ({config.codebook_size} of a video tokenizer's) from a caption, "
                   f"{'a code at a time' if config.decoding == 'token' else 'a latent frame in a few passes'}, with "
                   f"3D rotary positions over (t, h, w).")
        return hub.model_card("video-generator", "t2v video generator", summary, usage,
                              ["text-to-video", "autoregressive", "video-generation"], facts, config, self.provenance)

    def push_to_hub(self, repo_id: str, dtype: torch.dtype | None = None, **options: Any) -> str:
        """Upload the saved generator (with its card) to the hub repository `repo_id` (created if missing); the
        commit's URL. `options`: `huggingface_hub.ModelHubMixin.push_to_hub`'s (commit_message, private, token,
        branch, create_pr)."""
        return hub.push(lambda folder: self.save_pretrained(folder, dtype, model_card=True), repo_id, **options)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **hub_options: Any) -> "VideoGenerator":
        """Rebuild a generator from a `save_pretrained` directory (or a run directory holding one), or one published
        on the hub (`user/repo`: downloaded into the hub's cache; `hub_options`: revision, cache_dir, token,
        force_download, local_files_only). A damaged or incomplete file is a one-line ValueError naming it."""
        directory = hub.pretrained_dir(directory, "generator", **hub_options)
        if not (directory / WEIGHTS_FILE).is_file() or not (directory / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"no generator in {directory} (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        raw = read_json(config_path, _REPAIR)
        raw = raw["model"] if isinstance(raw.get("model"), dict) else raw
        known = {f.name for f in dataclasses.fields(GeneratorConfig)}
        if not known.issuperset(raw):
            raise ValueError(f"{config_path} is not a generator config (unknown keys {sorted(set(raw) - known)})")
        missing = [key for key in _REQUIRED if key not in raw]
        if missing:
            raise ValueError(f"{config_path}: missing key(s) {', '.join(missing)}: the file is incomplete or "
                             f"damaged; {_REPAIR}")
        if not {"sizes", "rates"} <= set(raw):
            raise ValueError(f"{config_path} is an old-format generator: it does not record the sizes and "
                             f"frame rates it was trained on (no 'sizes'/'rates'); retrain it with this version")
        try:
            model = cls(GeneratorConfig(**raw))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{config_path}: {error}; {_REPAIR}") from None
        load_weights(model, weights_path, _REPAIR)
        model.provenance = hub.read_provenance(directory, "video-generator")
        return model.eval()


# What a damaged generator file needs, and the keys its config.json must hold (each since the first version, or
# checked above; the others have defaults): without them the model would be built with another shape or vocabulary.
_REPAIR = "copy the generator directory again, or re-run `t2v generator train` to write it"
_REQUIRED = ("layers", "hidden", "heads", "kv_heads", "intermediate", "text_size", "codebook_size", "max_text_len",
             "rope_theta")


def read_json(path: Path, repair: str) -> dict:
    """The JSON object in `path`; a file that does not parse or holds no object is a one-line ValueError naming
    it (and the line), ending with `repair` (what to do)."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f" (line {error.lineno}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        raise ValueError(f"{path}: not valid JSON{where}: the file is damaged; {repair}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a JSON object, got a {type(values).__name__}: the file is damaged; "
                         f"{repair}")
    return values
