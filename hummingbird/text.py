"""OpenCLIP text side: the CLIP BPE tokenizer (offline) and the penultimate-layer text tower.

The tokenizer reproduces OpenCLIP's ``tokenize`` (open_clip_torch 2.24) id for id: the text is cleaned as OpenCLIP does (ftfy, HTML
unescape twice, whitespace collapsed, lower case), split with OpenCLIP's pattern and byte-pair encoded by a
transformers ``CLIPTokenizer`` built in memory from the vocabulary file shipped in ``hummingbird/assets``.
The text tower is a transformers ``CLIPTextModel`` holding the first ``layers - 1`` OpenCLIP blocks; its
``last_hidden_state`` is ``ln_final`` of the penultimate block's output, called without an attention mask.
"""

from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import ftfy
import regex
import torch
from tokenizers import pre_tokenizers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

VOCAB_FILE = Path(__file__).resolve().parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
CONTEXT_LENGTH = 77
SOT_ID = 49406
EOT_ID = 49407
PAD_ID = 0
_NUM_MERGES = 49152 - 256 - 2  # merges used by the 49,408-token vocabulary
# OpenCLIP's special-token spellings and word pattern (open_clip_torch 2.24, as pinned by the reference)
_SOT, _EOT = "<start_of_text>", "<end_of_text>"
_WORD_PATTERN = rf"""{_SOT}|{_EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+"""
_WHITESPACE = regex.compile(r"\s+")
_WORDS = regex.compile(_WORD_PATTERN, regex.IGNORECASE)


def clean_text(text: str) -> str:
    """OpenCLIP's text cleaning: ftfy, HTML unescape (twice), whitespace collapsed, stripped, lower-cased."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


def _byte_symbols() -> list[str]:
    """The 256 byte-level BPE symbols in vocabulary order: printable bytes as themselves, then the others."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(256 - len(printable))]


@lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 49,408-token vocabulary and the BPE merges, read from the shipped vocabulary file."""
    with gzip.open(VOCAB_FILE, "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1:_NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [_SOT, _EOT]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != EOT_ID + 1 or vocab[_SOT] != SOT_ID:
        raise ValueError(f"{VOCAB_FILE.name} does not give the 49,408-token CLIP vocabulary")
    return vocab, merges


@lru_cache(maxsize=1)
def get_tokenizer() -> CLIPTokenizer:
    """A ``CLIPTokenizer`` doing CLIP byte-level BPE on words already split by :func:`split_words`."""
    vocab, merges = _vocab_and_merges()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, unk_token=_EOT, bos_token=_SOT, eos_token=_EOT,
                              pad_token=_EOT)
    backend = tokenizer.backend_tokenizer
    # clean_text and split_words do OpenCLIP's cleaning and word splitting; the backend only byte-encodes
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return tokenizer


def split_words(prompt: str) -> list[str]:
    """The cleaned prompt split into OpenCLIP's BPE words.

    OpenCLIP's spellings ``<start_of_text>`` / ``<end_of_text>`` become their special ids only where this
    split isolates them (not after punctuation), exactly as in OpenCLIP.
    """
    return _WORDS.findall(clean_text(prompt))


def bpe_ids(prompt: str) -> list[int]:
    """BPE ids of ``prompt`` without start/end tokens, not truncated."""
    words = split_words(prompt)
    if not words:
        return []
    return get_tokenizer()(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]


def count_tokens(prompt: str) -> int:
    """Number of BPE tokens of ``prompt`` (start/end tokens excluded); more than 75 are truncated."""
    return len(bpe_ids(prompt))


def tokenize(prompts: list[str]) -> torch.Tensor:
    """OpenCLIP token ids [N, 77]: start, BPE ids, end, zero padding; longer ones keep start + 75 + end."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("tokenize expects a list of strings")
    out = torch.full((len(prompts), CONTEXT_LENGTH), PAD_ID, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = [SOT_ID, *bpe_ids(prompt)][:CONTEXT_LENGTH - 1] + [EOT_ID]
        out[row, :len(ids)] = torch.tensor(ids)
    return out


def _text_dims(text_cfg: Mapping[str, Any]) -> dict[str, int]:
    """Width, heads, layers, MLP width, vocabulary and context of an OpenCLIP ``text_cfg``."""
    missing = {"width", "heads", "layers"} - set(text_cfg)
    if missing:
        raise ValueError(f"text_cfg lacks {sorted(missing)}")
    for key in ("hf_model_name", "ls_init_value", "embed_cls", "no_causal_mask"):
        if text_cfg.get(key):
            raise ValueError(f"text_cfg.{key}={text_cfg[key]!r} is not the OpenCLIP ViT text tower used here")
    dims = dict(width=int(text_cfg["width"]), heads=int(text_cfg["heads"]), layers=int(text_cfg["layers"]),
                context=int(text_cfg.get("context_length", CONTEXT_LENGTH)),
                vocab=int(text_cfg.get("vocab_size", EOT_ID + 1)))
    dims["mlp"] = int(dims["width"] * float(text_cfg.get("mlp_ratio", 4.0)))
    if dims["layers"] < 2:
        raise ValueError(f"text_cfg.layers must be at least 2 (the penultimate block is used), got {dims['layers']}")
    if dims["width"] % dims["heads"]:
        raise ValueError(f"text_cfg.width {dims['width']} is not divisible by heads {dims['heads']}")
    return dims


def text_model_config(text_cfg: Mapping[str, Any]) -> CLIPTextConfig:
    """``CLIPTextConfig`` of the penultimate-layer tower (``layers - 1`` blocks, exact GELU, eps 1e-5)."""
    d = _text_dims(text_cfg)
    return CLIPTextConfig(vocab_size=d["vocab"], hidden_size=d["width"], intermediate_size=d["mlp"],
                          num_attention_heads=d["heads"], num_hidden_layers=d["layers"] - 1,
                          max_position_embeddings=d["context"], hidden_act="gelu", layer_norm_eps=1e-5,
                          projection_dim=d["width"], bos_token_id=SOT_ID, eos_token_id=EOT_ID, pad_token_id=PAD_ID)


def build_text_encoder(text_cfg: Mapping[str, Any]) -> CLIPTextModel:
    """A randomly initialised ``CLIPTextModel`` with the penultimate-layer architecture of ``text_cfg``."""
    return CLIPTextModel(text_model_config(text_cfg)).eval()


_BLOCK_RENAMES = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                  "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_TOP_RENAMES = {"token_embedding.weight": "embeddings.token_embedding.weight",
                "positional_embedding": "embeddings.position_embedding.weight",
                "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
_UNUSED = {"text_projection", "logit_scale"}
_BLOCK_KEY = regex.compile(r"transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)")
_IN_PROJ_KEY = regex.compile(r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)")


def _convert_block_key(key: str, value: torch.Tensor, width: int, last: int) -> dict[str, torch.Tensor]:
    """One OpenCLIP residual-block tensor as CLIPTextModel tensors (q/k/v split; the last block dropped)."""
    packed = _IN_PROJ_KEY.fullmatch(key)
    match = packed or _BLOCK_KEY.fullmatch(key)
    if match is None or (not packed and match[2] not in _BLOCK_RENAMES):
        raise ValueError(f"unexpected OpenCLIP text key {key!r}")
    index = int(match[1])
    if index > last:
        raise ValueError(f"OpenCLIP text key {key!r} is beyond the configured {last + 1} blocks")
    if index == last:
        return {}
    prefix = f"encoder.layers.{index}."
    if not packed:
        return {f"{prefix}{_BLOCK_RENAMES[match[2]]}.{match[3]}": value}
    if value.shape[0] != 3 * width:
        raise ValueError(f"{key} has shape {tuple(value.shape)}, expected {3 * width} rows (q, k, v)")
    q, k, v = value.split(width, dim=0)
    return {f"{prefix}self_attn.{name}_proj.{match[2]}": part for name, part in zip("qkv", (q, k, v))}


def openclip_text_to_hf(sd: Mapping[str, torch.Tensor], text_cfg: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """OpenCLIP text-tower state dict (no prefix) -> ``CLIPTextModel`` keys (transformers 5.x naming).

    The last block, ``text_projection`` and ``logit_scale`` are dropped; any other unknown key is an error.
    """
    d = _text_dims(text_cfg)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in _UNUSED:
            continue
        if key in _TOP_RENAMES:
            out[_TOP_RENAMES[key]] = value
        else:
            out.update(_convert_block_key(key, value, d["width"], d["layers"] - 1))
    return out


def load_text_encoder(sd: Mapping[str, torch.Tensor], text_cfg: Mapping[str, Any]) -> CLIPTextModel:
    """A ``CLIPTextModel`` holding the converted OpenCLIP weights (loaded strictly, no random init)."""
    hf_sd = openclip_text_to_hf(sd, text_cfg)
    with torch.device("meta"):
        model = CLIPTextModel(text_model_config(text_cfg))
    try:
        model.load_state_dict(hf_sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"OpenCLIP text weights do not fit text_cfg: {exc}") from exc
    embeddings = model.embeddings
    positions = embeddings.position_embedding.weight.shape[0]
    embeddings.position_ids = torch.arange(positions, device=embeddings.position_embedding.weight.device)[None]
    return model.eval().requires_grad_(False)


class TextEncoder:
    """Prompts -> OpenCLIP penultimate-layer embeddings [N, 77, width]."""

    def __init__(self, model: CLIPTextModel) -> None:
        self.model = model

    @classmethod
    def from_openclip_state_dict(cls, sd: Mapping[str, torch.Tensor], text_cfg: Mapping[str, Any]) -> "TextEncoder":
        """Build from an OpenCLIP text-tower state dict (prefix ``cond_stage_model.model.`` removed)."""
        return cls(load_text_encoder(sd, text_cfg))

    @classmethod
    def random(cls, text_cfg: Mapping[str, Any]) -> "TextEncoder":
        """Randomly initialised weights (for tests and smoke runs)."""
        return cls(build_text_encoder(text_cfg).requires_grad_(False))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "TextEncoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def encode_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids [N, 77] -> embeddings [N, 77, width] (causal mask only, no padding mask)."""
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [N, {CONTEXT_LENGTH}], got {tuple(input_ids.shape)}")
        return self.model(input_ids=input_ids.to(self.device)).last_hidden_state

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> embeddings [N, 77, width]."""
        return self.encode_ids(tokenize(prompts))
