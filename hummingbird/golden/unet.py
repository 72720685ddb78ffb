"""Golden checks of the U-Net kinds: ``t2v_unet`` (forward and conditioning embeddings) and ``i2v_unet``."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from hummingbird.configs import unet_params_from_official
from hummingbird.golden import Fixture
from hummingbird.unet import HummingbirdUNet, guidance_embedding, timestep_embedding

# debug output -> name of the sub-module whose output it is (None: the last input block)
DEBUG_TAPS: dict[str, str | None] = {
    "debug_h_init_attn": "init_attn",
    "debug_h_input_last": None,
    "debug_h_middle": "middle_block",
}
_SINUSOID = re.compile(r"(t|fps)_sinusoid_(\d+)")


def load_unet(fx: Fixture) -> HummingbirdUNet:
    """Build the U-Net of a fixture's config and load its weights strictly, in eval mode."""
    cfg = fx.config.get("unet_config")
    if cfg is None:
        model_section = fx.config["model"]
        cfg = model_section.get("params", model_section)["unet_config"]
    model = HummingbirdUNet(**unet_params_from_official(cfg.get("params", cfg), cfg.get("target", "")))
    model.load_state_dict(fx.weights(), strict=True)
    return model.eval()


@contextmanager
def capture_outputs(model: HummingbirdUNet, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the debug taps ``names`` during the forward passes run inside the block."""
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        path = DEBUG_TAPS[name] or f"input_blocks.{len(model.input_blocks) - 1}"

        def hook(_module: Any, _args: Any, output: torch.Tensor, name: str = name) -> None:
            captured[name] = output.detach()

        handles.append(modules[path].register_forward_hook(hook))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _optional(fx: Fixture, name: str) -> torch.Tensor | None:
    """The input tensor ``name`` if the fixture lists it, else None."""
    return fx[name] if name in fx.meta["inputs"] else None


def _compare_all(fx: Fixture, results: dict[str, torch.Tensor]) -> None:
    """Compare every listed output; an output we did not produce is a failure."""
    for name in fx.meta["outputs"]:
        if name in results:
            fx.compare(name, results[name])
        else:
            fx.record(name, False, "output not produced by the checker")


def _check_embeddings(fx: Fixture) -> None:
    inputs = {"t": fx["t"], "fps": fx["fps"]}
    results = {}
    for name in fx.meta["outputs"]:
        match = _SINUSOID.fullmatch(name)
        if name == "w_embedding":
            results[name] = guidance_embedding(fx["w"], int(fx.call.get("w_embedding_dim", 256)))
        elif match:
            results[name] = timestep_embedding(inputs[match.group(1)], int(match.group(2)))
    _compare_all(fx, results)


def check_t2v_unet(fx: Fixture) -> None:
    """One T2V U-Net forward (with debug taps), or the conditioning embeddings (``call.entry``)."""
    if fx.call.get("entry") == "embeddings":
        _check_embeddings(fx)
        return
    model = load_unet(fx)
    fps = fx["fps"] if "fps" in fx.meta["inputs"] else fx.call.get("fps")
    taps = [name for name in fx.meta["outputs"] if name in DEBUG_TAPS]
    with capture_outputs(model, taps) as results:
        eps = model(fx["x"], fx["timesteps"], fx["context"], fps=fps, timestep_cond=_optional(fx, "timestep_cond"))
    _compare_all(fx, {"eps": eps, **results})


def check_i2v_unet(fx: Fixture) -> None:
    """One I2V U-Net forward per case in ``call.cases`` (tensor names carry the case suffix)."""
    model = load_unet(fx)
    results = {}
    for case in fx.call["cases"]:
        results[f"v{case}"] = model(fx[f"x{case}"], fx[f"timesteps{case}"], fx[f"context{case}"],
                                    fps=_optional(fx, f"fs{case}"))
    _compare_all(fx, results)
