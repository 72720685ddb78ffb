"""Safe reading of every Hummingbird release file format, splitting, config inference and conversion.

Release files (spec ``t2v.md`` §8, ``i2v.md`` §2, ``sr.md`` §1.2, ``reneg.md`` §2):

* ``*_merged_all.pt``: a pickled whole ``LatentDiffusion`` nn.Module. It is read with a restricted
  unpickler that never imports the model code and never runs code from the file: model classes become
  inert stubs that keep their pickled ``__dict__``, and the flat state dict is rebuilt from the stub tree.
* ``stage_1.ckpt`` (``{'state_dict': ...}``), DeepSpeed ``{'module': ...}``, bare state dicts
  (``unet.pt``, ``img_proj.pt``), BasicSR ``{'params_ema', 'params'}``, a bare tensor (ReNeg) and
  ``.safetensors``: plain containers, read with ``torch.load(weights_only=True)`` or safetensors.

:func:`convert` writes one safetensors file per component (official key names, prefix stripped, dtypes
as stored) with its config; :func:`load_converted` reads such a folder back without touching pickle.
"""

from __future__ import annotations

import _compat_pickle
import collections
import filecmp
import functools
import json
import logging
import math
import os
import pickle
import re
import struct
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hummingbird.configs import PRESETS, ModelConfig

log = logging.getLogger(__name__)

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

# format name -> description
FORMATS: dict[str, str] = {
    "pickled_module": "pickled whole model (nn.Module), read with the restricted unpickler",
    "lightning": "torch file of a dict with 'state_dict'",
    "deepspeed": "torch file of a dict with 'module'",
    "basicsr": "BasicSR torch file with 'params_ema' / 'params'",
    "state_dict": "torch file of a bare state dict",
    "tensor": "torch file of one bare tensor",
    "safetensors": "safetensors file",
}

# component -> key prefix in a whole-model state dict
COMPONENT_PREFIXES: dict[str, str] = {
    "unet": "model.diffusion_model.",
    "vae": "first_stage_model.",
    "text_encoder": "cond_stage_model.model.",
    "image_encoder": "embedder.model.",
    "resampler": "image_proj_model.",
}
SCHEDULE = "schedule"
# component -> ModelConfig field holding its config
COMPONENT_CONFIG: dict[str, str] = {"unet": "unet", "vae": "vae", "text_encoder": "text",
                                    "image_encoder": "vision", "resampler": "resampler"}
# a bare state dict is recognised by one of its keys (first match wins)
_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("unet", "time_embed.0.weight"), ("vae", "post_quant_conv.weight"), ("image_encoder", "visual.conv1.weight"),
    ("text_encoder", "token_embedding.weight"), ("resampler", "latents"), ("sr", "conv_first.weight"),
)
TENSOR_KEY = "embedding"  # key of a bare tensor (ReNeg) once read as a state dict
FORWARD_MODULE_PREFIX = "_forward_module."
MANIFEST_FILE = "hummingbird.json"
RENEG_TOKENS = 77

# ---------------------------------------------------------------------------------------------- errors


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not hold what is expected."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that would run code or reach an unexpected global when unpickled."""

    def __init__(self, global_name: str, reason: str = "which a checkpoint never needs",
                 source: str | None = None) -> None:
        self.global_name, self.reason, self.source = global_name, reason, source
        what = f"refusing to load {source}" if source else "refusing to load the checkpoint"
        super().__init__(f"{what}: it references {global_name}, {reason}")

    def for_source(self, source: str) -> "UnsafeCheckpointError":
        """The same refusal, naming the file."""
        return UnsafeCheckpointError(self.global_name, self.reason, source)


# ---------------------------------------------------------------------------- restricted unpickler


class StubModule:
    """Inert stand-in for a class named by a checkpoint: accepts any arguments, keeps state, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "StubModule":
        obj = object.__new__(cls)
        if args or kwargs:
            obj.__dict__["_stub_args"] = (args, kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments were kept by ``__new__``."""

    def __setstate__(self, state: Any) -> None:
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, dict):
                self.__dict__.update(part)
            elif part is not None:
                self.__dict__["_stub_state"] = part

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_stub_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.__dict__.setdefault("_stub_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<stub {type(self).__module__}.{type(self).__qualname__}>"


@functools.cache
def stub_class(module: str, name: str) -> type[StubModule]:
    """The inert stub class standing for ``module.name`` (one per pair; the real module is never imported)."""
    log.debug("checkpoint global %s.%s replaced by an inert stub", module, name)
    return type(name, (StubModule,), {"__module__": module, "__qualname__": name})


class AttributeMarker:
    """What ``getattr(stub, name)`` gives in a checkpoint: a record of the name, never a real attribute."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(f"builtins.getattr(..., {self.name!r})",
                                    "whose result it calls, which a checkpoint never needs")

    def __repr__(self) -> str:
        return f"<attribute {self.name!r}>"


def _getattr_placeholder(obj: Any, name: Any, *default: Any) -> AttributeMarker:
    """Stands for ``builtins.getattr``: allowed on model stubs only (bound methods), returns a marker."""
    if not isinstance(obj, StubModule) or not isinstance(name, str):
        raise UnsafeCheckpointError(f"builtins.getattr on a {type(obj).__name__}",
                                    "which a checkpoint never needs (only model objects may be named)")
    return AttributeMarker(name)


def _reconstruct_stub(cls: Any, base: Any, state: Any) -> StubModule:
    """Stands for ``copyreg._reconstructor``: builds bare stub instances only."""
    if not (isinstance(cls, type) and issubclass(cls, StubModule)):
        what = cls.__name__ if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise UnsafeCheckpointError(f"copyreg._reconstructor applied to {what}", "which a checkpoint never needs")
    obj = cls.__new__(cls)
    if state is not None:
        obj.__dict__["_stub_state"] = state
    return obj


_STUB_PREFIXES = ("lvdm.", "open_clip.", "omegaconf.", "torch.nn.modules.", "pytorch_lightning.",
                  "lightning_fabric.", "typing.")
_STUB_GLOBALS = {("torch.distributed._shard.sharded_tensor", "state_dict_hook"),
                 ("torch.distributed._shard.sharded_tensor", "pre_load_state_dict_hook")}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The inert real objects a checkpoint may name."""
    allowed: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
        ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "long"): int,
        ("builtins", "int"): int,  # Python 2 ``__builtin__.long`` maps here
        ("builtins", "getattr"): _getattr_placeholder,
        ("copyreg", "_reconstructor"): _reconstruct_stub,
        ("torch", "Size"): torch.Size, ("torch", "device"): torch.device,
    }
    allowed.update({("torch", name): value for name, value in vars(torch).items()
                    if isinstance(value, torch.dtype)})
    return allowed


_ALLOWED = _allowed_globals()


def resolve_global(module: str, name: str) -> Any:
    """The restricted ``find_class`` policy (spec t2v.md §8.3): a real inert object, a stub, or a refusal.

    Python-2 names (``__builtin__``, ``copy_reg``, ...) are first mapped as the stock unpickler maps them.
    """
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    found = _ALLOWED.get((module, name))
    if found is not None:
        return found
    stubbed = (module + ".").startswith(_STUB_PREFIXES) or (module, name) in _STUB_GLOBALS
    if stubbed and name.isidentifier():  # a dotted name would walk attributes of the real module
        return stub_class(module, name)
    raise UnsafeCheckpointError(f"{module}.{name}")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals go through :func:`resolve_global`."""

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# the ``pickle_module`` handed to torch.load
restricted_pickle = types.SimpleNamespace(__name__="hummingbird.restricted_pickle", Unpickler=RestrictedUnpickler,
                                          load=_restricted_load, UnpicklingError=pickle.UnpicklingError)


def flatten_module(root: StubModule) -> StateDict:
    """The ``state_dict()`` of a pickled module tree: parameters, persistent buffers, then children."""
    out: StateDict = {}
    _flatten_into(root, "", out, set())
    return out


def _flatten_into(module: Any, prefix: str, out: StateDict, path: set[int]) -> None:
    if not isinstance(module, StubModule) or "_modules" not in vars(module):
        raise CheckpointError(f"pickled object at {prefix or 'the root'!r} is not a torch module: {module!r}")
    if id(module) in path:
        raise CheckpointError(f"pickled module at {prefix!r} contains itself")
    state = vars(module)
    skipped = state.get("_non_persistent_buffers_set") or set()
    entries = [(n, t) for n, t in _entries(state, "_parameters", prefix) if t is not None]
    entries += [(n, t) for n, t in _entries(state, "_buffers", prefix) if t is not None and n not in skipped]
    for name, tensor in entries:
        if not isinstance(tensor, Tensor):
            raise CheckpointError(f"{prefix}{name} is a {type(tensor).__name__}, not a tensor")
        out[prefix + name] = tensor.detach()
    path.add(id(module))
    for name, child in _entries(state, "_modules", prefix):
        if child is not None:
            _flatten_into(child, f"{prefix}{name}.", out, path)
    path.discard(id(module))


def _entries(state: dict[str, Any], field: str, prefix: str) -> list[tuple[str, Any]]:
    """The (name, value) pairs of a module's ``_parameters`` / ``_buffers`` / ``_modules`` dict."""
    value = state.get(field) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(f"pickled module at {prefix or 'the root'!r} has a malformed {field}")
    return list(value.items())


# ------------------------------------------------------------------------------------- file reading


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 8 + size <= path.stat().st_size


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold code (torch.load would hand them to torch.jit.load)."""
    with zipfile.ZipFile(path) as z:
        return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in z.namelist())


def _torch_load(path: Path, restricted: bool) -> Any:
    """``torch.load`` of a torch file: weights-only, or through the restricted unpickler."""
    is_zip = zipfile.is_zipfile(path)
    if is_zip and _is_torchscript(path):
        raise UnsafeCheckpointError("TorchScript code", "which a checkpoint never needs", path.name)
    if restricted:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=is_zip,
                          pickle_module=restricted_pickle)
    with warnings.catch_warnings():  # torch notes any protocol other than 2; that is no problem here
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)


def load_object(path: str | os.PathLike[str]) -> Any:
    """The object stored in a torch file, read safely: ``weights_only=True`` first, then the restricted unpickler."""
    path = _existing(path)
    try:
        return _torch_load(path, restricted=False)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        log.debug("%s is not a weights-only file (%s); using the restricted unpickler", path.name, exc)
    except Exception as exc:  # corrupt, truncated or not a torch file at all
        raise CheckpointError(f"cannot read {path.name}: {exc}") from None
    try:
        return _torch_load(path, restricted=True)
    except UnsafeCheckpointError as exc:
        raise exc.for_source(path.name) from None
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None


def _existing(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    return path


def _tensor_dict(obj: Any, what: str) -> StateDict:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} is a {type(obj).__name__}, not a state dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{what} holds entries that are not named tensors: {bad[:5]}")
    return dict(obj)


def _basicsr_params(obj: dict[str, Any], what: str) -> StateDict:
    """BasicSR: ``params_ema`` when present, else ``params`` (as the reference loader does)."""
    key = "params_ema" if "params_ema" in obj else "params"
    return _tensor_dict(obj[key], f"{what}[{key!r}]")


def _classify(obj: Any, what: str) -> tuple[str, StateDict]:
    """(format, state dict) of a loaded torch object."""
    if isinstance(obj, Tensor):
        return "tensor", {TENSOR_KEY: obj}
    if isinstance(obj, StubModule):
        return "pickled_module", flatten_module(obj)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} holds a {type(obj).__name__}, not a model checkpoint")
    if "state_dict" in obj:
        return "lightning", _tensor_dict(obj["state_dict"], f"{what}['state_dict']")
    if "module" in obj:
        return "deepspeed", _tensor_dict(obj["module"], f"{what}['module']")
    if "params_ema" in obj or "params" in obj:
        return "basicsr", _basicsr_params(obj, what)
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return "state_dict", _tensor_dict(obj, what)
    raise CheckpointError(f"{what} is a dict with keys {sorted(map(str, obj))[:8]} but no 'state_dict' "
                          "(nor 'module', 'params_ema', 'params'): it holds no model weights")


_OLD_NAMES = ((re.compile(r"(^|\.)framestride_embed\."), r"\1fps_embedding."),)


def normalize_keys(sd: StateDict) -> StateDict:
    """Strip the DeepSpeed ``_forward_module.`` prefix and apply old-name renames (``framestride_embed``)."""
    out: StateDict = {}
    for key, value in sd.items():
        if key.startswith(FORWARD_MODULE_PREFIX):
            key = key[len(FORWARD_MODULE_PREFIX):]
        for pattern, repl in _OLD_NAMES:
            key = pattern.sub(repl, key)
        if key in out:
            raise CheckpointError(f"two tensors map to the key {key!r}")
        out[key] = value
    return out


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[str, StateDict]:
    """(format, flat state dict) of any release file; see :data:`FORMATS`."""
    path = _existing(path)
    if _is_safetensors(path):
        try:
            return "safetensors", normalize_keys(load_file(str(path)))
        except Exception as exc:
            raise CheckpointError(f"cannot read {path.name}: {exc}") from None
    fmt, sd = _classify(load_object(path), path.name)
    return fmt, normalize_keys(sd)


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """The flat state dict of any release file, official key names, dtypes as stored."""
    return read_checkpoint(path)[1]


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format name (a key of :data:`FORMATS`) of a release file."""
    return read_checkpoint(path)[0]


def load_basicsr(path: str | os.PathLike[str]) -> StateDict:
    """The weights of a BasicSR checkpoint (``params_ema`` first, then ``params``) or of a bare state dict."""
    fmt, sd = read_checkpoint(path)
    if fmt not in ("basicsr", "state_dict", "safetensors"):
        raise CheckpointError(f"{Path(path).name} is a {fmt} file ({FORMATS[fmt]}), not super-resolution weights")
    return sd


def load_reneg(path: str | os.PathLike[str], context_dim: int | None = None) -> Tensor:
    """A ReNeg negative text embedding ``[1 or B, 77, C]``: a bare tensor (.bin/.pt) or a single-key safetensors."""
    path = _existing(path)
    if _is_safetensors(path):
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if len(keys) != 1:
                raise CheckpointError(f"{path.name} holds {len(keys)} tensors; a ReNeg file holds exactly one")
            tensor = f.get_tensor(keys[0])
    else:
        tensor = load_object(path)
        if not isinstance(tensor, Tensor):
            raise CheckpointError(f"{path.name} holds a {type(tensor).__name__}; a ReNeg file holds one bare tensor")
    return _check_reneg(tensor, path.name, context_dim)


def _check_reneg(tensor: Tensor, name: str, context_dim: int | None) -> Tensor:
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3 or tensor.shape[1] != RENEG_TOKENS or not tensor.is_floating_point():
        raise CheckpointError(f"{name}: a ReNeg embedding is a float tensor [1, {RENEG_TOKENS}, C]; "
                              f"got {tensor.dtype} {list(tensor.shape)}")
    if context_dim is not None and tensor.shape[2] != context_dim:
        raise CheckpointError(f"{name}: ReNeg width {tensor.shape[2]} does not match the text encoder "
                              f"width {context_dim}")
    return tensor


# ----------------------------------------------------------------------------------------- components


def split_components(sd: StateDict) -> dict[str, StateDict]:
    """Split a state dict by component prefix (stripped); top-level names go to ``schedule``.

    A state dict with none of the prefixes is one bare component, recognised by its keys.
    """
    if not any(key.startswith(tuple(COMPONENT_PREFIXES.values())) for key in sd):
        return {_bare_component(sd): dict(sd)}
    out: dict[str, StateDict] = {}
    unknown = []
    for key, value in sd.items():
        name = next((c for c, p in COMPONENT_PREFIXES.items() if key.startswith(p)), None)
        if name is not None:
            out.setdefault(name, {})[key[len(COMPONENT_PREFIXES[name]):]] = value
        elif "." not in key:
            out.setdefault(SCHEDULE, {})[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{len(unknown)} keys belong to no known component, e.g. {unknown[:5]}")
    return out


def _bare_component(sd: StateDict) -> str:
    if len(sd) == 1 and (t := next(iter(sd.values()))).ndim == 3 and t.shape[1] == RENEG_TOKENS:
        return "reneg"
    for name, key in _SIGNATURES:
        if key in sd:
            return name
    raise CheckpointError(f"unrecognised weights: no component prefix and no known layout (keys {list(sd)[:5]})")


def _shape(sd: StateDict, key: str, component: str) -> list[int]:
    if key not in sd:
        raise CheckpointError(f"{component}: missing {key!r}, cannot infer its configuration")
    return list(sd[key].shape)


def _indices(sd: StateDict, prefix: str) -> list[int]:
    """Sorted distinct integers N in keys ``prefix + 'N.'...``."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for key in sd if (m := pattern.match(key))})


def _unet_levels(sd: StateDict) -> list[list[int]]:
    """Input block indices of the ResBlocks of each resolution level (downsample blocks separate levels)."""
    levels: list[list[int]] = [[]]
    for i in _indices(sd, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in sd:
            levels.append([])
        else:
            levels[-1].append(i)
    if not all(levels):
        raise CheckpointError("unet: a resolution level without ResBlocks")
    return levels


def infer_unet_config(sd: StateDict) -> dict[str, Any]:
    """HummingbirdUNet kwargs from U-Net weight shapes (release rules for what shapes cannot show)."""
    mc, in_channels = _shape(sd, "input_blocks.0.0.weight", "unet")[:2]
    levels = _unet_levels(sd)
    widths = [_shape(sd, f"input_blocks.{lv[0]}.0.out_layers.3.weight", "unet")[0] for lv in levels]
    attn_levels = [n for n, lv in enumerate(levels) if f"input_blocks.{lv[0]}.1.norm.weight" in sd]
    if not attn_levels or "init_attn.0.proj_in.weight" not in sd:
        raise CheckpointError("unet: no attention blocks or no init_attn, not a Hummingbird U-Net")
    spatial = f"input_blocks.{levels[attn_levels[0]][0]}.1."
    temporal = f"input_blocks.{levels[attn_levels[0]][0]}.2."
    image_attention = any(k.endswith("attn2.to_k_ip.weight") for k in sd)
    cfg: dict[str, Any] = dict(
        in_channels=in_channels, out_channels=_shape(sd, "out.2.weight", "unet")[0], model_channels=mc,
        attention_resolutions=sorted((2 ** n for n in attn_levels), reverse=True),
        num_res_blocks=len(levels[0]), channel_mult=[w // mc for w in widths],
        num_head_channels=_shape(sd, "init_attn.0.proj_in.weight", "unet")[0] // 8,  # 8 heads, fixed in code
        transformer_depth=len(_indices(sd, spatial + "transformer_blocks.")),
        context_dim=_shape(sd, spatial + "transformer_blocks.0.attn2.to_k.weight", "unet")[1],
        use_linear=len(_shape(sd, spatial + "proj_in.weight", "unet")) == 2,
        temporal_conv=any(".temopral_conv." in k for k in sd),
        temporal_attention=temporal + "norm.weight" in sd,
        temporal_selfatt_only=_temporal_self_only(sd, temporal),
        addition_attention=True, fps_cond="fps_embedding.0.weight" in sd,
        default_fps=24 if image_attention else 8, use_middle_block=any(k.startswith("middle_block.") for k in sd))
    if any(w % mc for w in widths):
        raise CheckpointError(f"unet: level widths {widths} are not multiples of model_channels {mc}")
    if "time_cond_proj.weight" in sd:
        cfg["time_cond_proj_dim"] = _shape(sd, "time_cond_proj.weight", "unet")[1]
    if image_attention:
        cfg.update(image_cross_attention=True, dropout=0.1)
    return cfg


def _temporal_self_only(sd: StateDict, temporal: str) -> bool:
    """A temporal transformer is self-attention only when its attn2 keys come from its own width."""
    k, q = temporal + "transformer_blocks.0.attn2.to_k.weight", temporal + "transformer_blocks.0.attn2.to_q.weight"
    return k not in sd or sd[k].shape[1] == sd[q].shape[1]


def infer_vae_config(sd: StateDict, resolution: int = 256) -> dict[str, Any]:
    """The LDM ``ddconfig`` (+ ``embed_dim``) from VAE weight shapes; ``resolution`` is not stored in weights."""
    ch, in_channels = _shape(sd, "encoder.conv_in.weight", "vae")[:2]
    levels = _indices(sd, "encoder.down.")
    widths = [_shape(sd, f"encoder.down.{i}.block.0.conv1.weight", "vae")[0] for i in levels]
    z_channels = _shape(sd, "decoder.conv_in.weight", "vae")[1]
    return dict(double_z=_shape(sd, "encoder.conv_out.weight", "vae")[0] == 2 * z_channels, z_channels=z_channels,
                resolution=resolution, in_channels=in_channels, out_ch=_shape(sd, "decoder.conv_out.weight", "vae")[0],
                ch=ch, ch_mult=[w // ch for w in widths], num_res_blocks=len(_indices(sd, "encoder.down.0.block.")),
                attn_resolutions=[resolution // 2 ** i for i in levels if f"encoder.down.{i}.attn.0.q.weight" in sd],
                dropout=0.0, embed_dim=_shape(sd, "post_quant_conv.weight", "vae")[0])


def infer_text_config(sd: StateDict) -> dict[str, Any]:
    """OpenCLIP ``text_cfg`` from text-tower shapes; heads by the release rule (head width 64)."""
    vocab, width = _shape(sd, "token_embedding.weight", "text_encoder")
    return dict(context_length=_shape(sd, "positional_embedding", "text_encoder")[0], vocab_size=vocab,
                width=width, heads=max(1, width // 64), layers=len(_indices(sd, "transformer.resblocks.")))


def infer_vision_config(sd: StateDict) -> dict[str, Any]:
    """OpenCLIP ``vision_cfg`` from vision-tower shapes; head width 80 by the release rule."""
    width, _, patch, _ = _shape(sd, "visual.conv1.weight", "image_encoder")
    grid = math.isqrt(_shape(sd, "visual.positional_embedding", "image_encoder")[0] - 1)
    return dict(image_size=grid * patch, layers=len(_indices(sd, "visual.transformer.resblocks.")), width=width,
                head_width=80, patch_size=patch)


def infer_resampler_config(sd: StateDict, video_length: int = 16) -> dict[str, Any]:
    """Resampler params from shapes; head width 64 and ``video_length`` 16 by the release rule."""
    dim, embedding_dim = _shape(sd, "proj_in.weight", "resampler")
    inner = _shape(sd, "layers.0.0.to_q.weight", "resampler")[0]
    queries = _shape(sd, "latents", "resampler")[1]
    return dict(dim=dim, depth=len(_indices(sd, "layers.")), dim_head=64, heads=max(1, inner // 64),
                num_queries=queries // video_length, embedding_dim=embedding_dim,
                output_dim=_shape(sd, "proj_out.weight", "resampler")[0],
                ff_mult=_shape(sd, "layers.0.1.1.weight", "resampler")[0] // dim, video_length=video_length)


# structural config keys that the weights determine, per ModelConfig field (checked against a given config)
_SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "unet": ("in_channels", "out_channels", "model_channels", "channel_mult", "num_res_blocks",
             "attention_resolutions", "num_head_channels", "transformer_depth", "context_dim", "use_linear",
             "temporal_conv", "temporal_attention", "fps_cond", "time_cond_proj_dim", "image_cross_attention",
             "use_middle_block"),
    "vae": ("z_channels", "in_channels", "out_ch", "ch", "ch_mult", "num_res_blocks", "embed_dim", "double_z"),
    "text": ("context_length", "vocab_size", "width", "layers"),
    "vision": ("layers", "width", "patch_size", "image_size"),
    "resampler": ("dim", "depth", "embedding_dim", "output_dim", "ff_mult"),
}
_UNET_DEFAULTS = {"time_cond_proj_dim": None, "image_cross_attention": False, "use_middle_block": True}


def infer_config(components: dict[str, StateDict], config: ModelConfig | None = None) -> ModelConfig:
    """The ModelConfig of a split checkpoint, from weight shapes.

    With ``config`` (e.g. for widths whose head counts differ from the release rule), that config is
    returned after checking that every shape-determined field agrees with the weights.
    """
    missing = [c for c in ("unet", "vae", "text_encoder") if c not in components]
    if missing:
        raise CheckpointError(f"not a whole model: no {', '.join(missing)} weights")
    inferred = _infer_fields(components)
    if config is not None:
        _check_agrees(inferred, config, components)
        return config
    task = "i2v" if inferred["vision"] is not None else "t2v"
    candidate = ModelConfig(name=f"{task}-custom", **inferred)
    return next((p for p in PRESETS.values() if p == candidate.replace(name=p.name)), candidate)


def _infer_fields(components: dict[str, StateDict]) -> dict[str, Any]:
    unet = infer_unet_config(components["unet"])
    vision = resampler = None
    if unet.get("image_cross_attention"):
        if "image_encoder" not in components or "resampler" not in components:
            raise CheckpointError("the U-Net has image cross-attention but the checkpoint has no image "
                                  "encoder or resampler")
        vision = infer_vision_config(components["image_encoder"])
        resampler = infer_resampler_config(components["resampler"])
    return dict(unet=unet, vae=infer_vae_config(components["vae"]), text=infer_text_config(components["text_encoder"]),
                vision=vision, resampler=resampler)


def _check_agrees(inferred: dict[str, Any], config: ModelConfig, components: dict[str, StateDict]) -> None:
    given = config.to_dict()
    problems = []
    for section, keys in _SHAPE_KEYS.items():
        want, have = inferred[section], given.get(section)
        if (want is None) != (have is None):
            problems.append(f"{section}: {'absent from' if want is None else 'present in'} the weights")
        if want is None or have is None:
            continue
        for key in keys:
            default = _UNET_DEFAULTS.get(key, want.get(key)) if section == "unet" else want.get(key)
            a, b = _comparable(key, want.get(key, default)), _comparable(key, have.get(key, default))
            if a != b:
                problems.append(f"{section}.{key}: weights say {a}, config says {b}")
    if inferred["resampler"] and given.get("resampler"):
        problems += _resampler_disagreements(components["resampler"], given["resampler"])
    if problems:
        raise CheckpointError(f"config {config.name!r} does not match the weights: " + "; ".join(problems))


def _resampler_disagreements(sd: StateDict, cfg: dict[str, Any]) -> list[str]:
    inner = _shape(sd, "layers.0.0.to_q.weight", "resampler")[0]
    queries = _shape(sd, "latents", "resampler")[1]
    problems = []
    if cfg["heads"] * cfg["dim_head"] != inner:
        problems.append(f"resampler.heads*dim_head: weights say {inner}, config says {cfg['heads'] * cfg['dim_head']}")
    if cfg["num_queries"] * cfg["video_length"] != queries:
        problems.append(f"resampler.num_queries*video_length: weights say {queries}, "
                        f"config says {cfg['num_queries'] * cfg['video_length']}")
    return problems


def _comparable(key: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return sorted(value) if key == "attention_resolutions" else list(value)
    return value


# ------------------------------------------------------------------------------------------ conversion


def convert(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], config: ModelConfig | None = None, *,
            unet: str | os.PathLike[str] | None = None, img_proj: str | os.PathLike[str] | None = None,
            reneg: str | os.PathLike[str] | None = None, overwrite: bool = False) -> Path:
    """Convert a release checkpoint into a folder of safetensors files; returns the folder.

    Writes ``<component>.safetensors`` (official key names, prefix stripped, dtypes as stored) and
    ``<component>.json`` (its config section) for each component, ``reneg.safetensors`` when ``reneg`` is
    given, and :data:`MANIFEST_FILE` (the ModelConfig, the source format, the file list). ``unet`` and
    ``img_proj`` replace the U-Net and resampler of the source (I2V ``unet.pt`` / ``img_proj.pt``). Identical
    existing files are left alone; a different existing file is an error unless ``overwrite``.
    """
    source = Path(source)
    fmt, sd = read_checkpoint(source)
    components = split_components(sd)
    overrides = {}
    for name, path in (("unet", unet), ("resampler", img_proj)):
        if path is not None:
            components[name] = _override(components, name, Path(path))
            overrides[name] = Path(path).name
    config = infer_config(components, config)
    if reneg is not None:
        components["reneg"] = {TENSOR_KEY: load_reneg(reneg, config.unet["context_dim"])}
        overrides["reneg"] = Path(reneg).name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    for name, tensors in components.items():
        files[name] = _write_component(out, name, tensors, config, overwrite)
    manifest = dict(format_version=1, source=source.name, source_format=fmt, overrides=overrides,
                    config=config.to_dict(), components=files)
    _place_bytes(out / MANIFEST_FILE, _json_bytes(manifest), overwrite)
    return out


def _override(components: dict[str, StateDict], name: str, path: Path) -> StateDict:
    """The weights of ``path`` for component ``name``, checked key-for-key against the source's."""
    parts = split_components(read_state_dict(path))
    if set(parts) != {name}:
        raise CheckpointError(f"{path.name} holds {sorted(parts)} weights, expected {name}")
    new, old = parts[name], components.get(name)
    if old is None:
        raise CheckpointError(f"the source checkpoint has no {name} for {path.name} to replace")
    missing, extra = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    wrong = [k for k in old if k in new and old[k].shape != new[k].shape]
    if missing or extra or wrong:
        raise CheckpointError(f"{path.name} does not match the source {name}: missing {missing[:5]}, "
                              f"unexpected {extra[:5]}, other shapes {wrong[:5]}")
    return new


def _write_component(out: Path, name: str, tensors: StateDict, config: ModelConfig,
                     overwrite: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": f"{name}.safetensors", "tensors": len(tensors)}
    _place(out / entry["file"], lambda tmp: save_file(_unshared(tensors), str(tmp), metadata={"format": "pt"}),
           overwrite)
    section = COMPONENT_CONFIG.get(name)
    if section is not None:
        entry["config"] = f"{name}.json"
        _place_bytes(out / entry["config"], _json_bytes(getattr(config, section)), overwrite)
    return entry


def _unshared(tensors: StateDict) -> StateDict:
    """Contiguous tensors with no two sharing memory (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[key] = t
    return out


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _place_bytes(target: Path, data: bytes, overwrite: bool) -> None:
    _place(target, lambda tmp: tmp.write_bytes(data), overwrite)


def _place(target: Path, write: Callable[[Path], Any], overwrite: bool) -> None:
    """Write via ``write(tmp)``; keep an identical existing file, refuse a different one unless ``overwrite``."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if target.exists():
            if filecmp.cmp(tmp, target, shallow=False):
                return
            if not overwrite:
                raise CheckpointError(f"{target} exists with different content; not overwriting it "
                                      "(use overwrite to replace it)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_converted(directory: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, StateDict]]:
    """Read a folder written by :func:`convert`: the ModelConfig and the components' state dicts."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory} is not a converted checkpoint folder: no {MANIFEST_FILE}")
    manifest = json.loads(manifest_path.read_text())
    components = {}
    for name, entry in manifest["components"].items():
        path = directory / entry["file"]
        if not path.is_file():
            raise CheckpointError(f"{directory}: {entry['file']} listed in {MANIFEST_FILE} is missing")
        components[name] = load_file(str(path))
    return ModelConfig.from_dict(manifest["config"]), components


# --------------------------------------------------------------------------------------------- report


def inspect(path: str | os.PathLike[str]) -> str:
    """A text report: format, components with tensor / element counts and dtypes, inferred config."""
    path = Path(path)
    fmt, sd = read_checkpoint(path)
    components = split_components(sd)
    lines = [f"{path.name}: {fmt} ({FORMATS[fmt]})",
             f"{len(sd)} tensors, {sum(t.numel() for t in sd.values()):,} elements", "",
             f"{'component':<14} {'tensors':>8} {'elements':>15}  dtypes"]
    for name, tensors in components.items():
        dtypes = ", ".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()}))
        lines.append(f"{name:<14} {len(tensors):>8} {sum(t.numel() for t in tensors.values()):>15,}  {dtypes}")
    lines += ["", f"config: {_config_summary(components)}"]
    return "\n".join(lines)


def _config_summary(components: dict[str, StateDict]) -> str:
    try:
        config = infer_config(components)
    except CheckpointError as exc:
        return f"not inferred ({exc})"
    return f"{config.name} ({config.task}, U-Net model_channels {config.unet['model_channels']}, " \
           f"channel_mult {config.unet['channel_mult']}, middle block {config.unet['use_middle_block']})"
