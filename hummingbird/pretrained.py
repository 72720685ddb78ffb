"""Diffusers-style pipeline folders: ``model_index.json`` plus one subfolder per component."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file, save_file

from hummingbird.weights import WeightsUnavailableError

PIPELINE_INDEX = "model_index.json"
TENSORS_FILE = "model.safetensors"


def is_pretrained_folder(source: str | os.PathLike | None) -> bool:
    return source is not None and (Path(source) / PIPELINE_INDEX).is_file()


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_tensors(folder: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any] | None = None) -> None:
    """``model.safetensors`` in ``folder``, with ``config.json`` when a config is given."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({key: value.detach().cpu().contiguous() for key, value in tensors.items()}, folder / TENSORS_FILE)
    if config is not None:
        write_json(folder / "config.json", config)


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / TENSORS_FILE)


def read_index(folder: Path, class_name: str) -> dict[str, Any]:
    """``model_index.json`` of ``folder``, checked to describe a ``class_name`` pipeline."""
    path = folder / PIPELINE_INDEX
    if not path.is_file():
        raise WeightsUnavailableError(f"no {PIPELINE_INDEX} in {folder}: not a folder written by save_pretrained")
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("_class_name") != class_name:
        raise ValueError(f"{folder} holds a {index.get('_class_name')}; load it with "
                         f"{index.get('_class_name')}.from_pretrained, not {class_name}.from_pretrained")
    return index


def load_vae_folder(folder: Path) -> AutoencoderKL:
    """The ``AutoencoderKL`` of ``folder``; one saved without encoder (decode-only) stays decode-only."""
    weights = load_file(folder / SAFETENSORS_WEIGHTS_NAME)
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder))
    if not any(key.startswith("encoder.") for key in weights):
        vae.encoder = vae.quant_conv = None
    vae.load_state_dict(weights, strict=True, assign=True)
    return vae.eval().requires_grad_(False)
