"""Safe reading of the release formats, refusal of malicious pickles, conversion and the CLI."""

from __future__ import annotations

import builtins
import copyreg
import collections
import json
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from conftest import MANIFESTS
from hummingbird import checkpoints as ck
from hummingbird.cli import main
from hummingbird.configs import I2V_09B, T2V_07B, T2V_09B, ModelConfig
from hummingbird.reneg import reneg_uncond_context

MARKER = "HB_TEST_PICKLE_CODE_EXECUTED"


class Call:
    """Pickles as ``fn(*args)``: how a malicious checkpoint runs code at load time."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __call__(self, *args: Any) -> Any:
        return self.fn(*self.args)(*args)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


def _save(obj: Any, path: Path, protocol: int = 2) -> Path:
    torch.save(obj, path, pickle_protocol=protocol)
    return path


def _torch_zip(path: Path, pickled: bytes) -> Path:
    """A torch zip container around hand-written pickle bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return path


def _rand_sd(*names: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {name: torch.randn(3, 2, generator=gen) for name in names}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------------------- malicious files

def _getattr_chain() -> Call:
    """exec reached from an allowed function's ``__globals__`` through ``getattr`` (runs code unrestricted)."""
    fn_globals = Call(getattr, torch._utils._rebuild_tensor_v2, "__globals__")
    builtins_ns = Call(Call(getattr, fn_globals, "get"), "__builtins__")
    exec_fn = Call(Call(getattr, builtins_ns, "get"), "exec")
    return Call(exec_fn, f"open({MARKER!r}, 'w').close()")


PAYLOADS = {
    "os.system": (lambda: Call(os.system, f"touch {MARKER}"), 2, f"{os.system.__module__}.system"),
    "subprocess.Popen": (lambda: Call(subprocess.Popen, ["touch", MARKER]), 2, "subprocess.Popen"),
    "builtins.eval": (lambda: Call(builtins.eval, f"open({MARKER!r}, 'w')"), 4, "builtins.eval"),
    "builtins.exec": (lambda: Call(builtins.exec, f"open({MARKER!r}, 'w').close()"), 4, "builtins.exec"),
    "__builtin__.eval": (lambda: Call(builtins.eval, f"open({MARKER!r}, 'w')"), 2, "builtins.eval"),
    "getattr abuse": (_getattr_chain, 2, "builtins.getattr on a function"),
    "reconstructor": (lambda: Call(copyreg._reconstructor, collections.OrderedDict, collections.OrderedDict, None),
                      2, "copyreg._reconstructor applied to OrderedDict"),
}


@pytest.mark.parametrize("case", sorted(PAYLOADS))
def test_malicious_pickle_is_refused_naming_the_global(case: str, in_tmp: Path) -> None:
    make, protocol, global_name = PAYLOADS[case]
    path = _save({"state_dict": _rand_sd("w"), "payload": make()}, in_tmp / "bad.pt", protocol)
    with pytest.raises(ck.UnsafeCheckpointError) as info:
        ck.read_state_dict(path)
    assert f"refusing to load bad.pt: it references {global_name}" in str(info.value)
    assert not (in_tmp / MARKER).exists()


def test_python2_alias_is_what_the_file_holds(in_tmp: Path) -> None:
    path = _save({"payload": Call(builtins.eval, "1")}, in_tmp / "bad.pt", 2)
    assert b"__builtin__" in zipfile.ZipFile(path).read("bad/data.pkl")
    with pytest.raises(ck.UnsafeCheckpointError, match=r"builtins\.eval"):
        ck.read_state_dict(path)


def test_payloads_really_run_code_without_the_restriction(in_tmp: Path) -> None:
    """The test files are genuinely malicious: the stock unpickler runs them."""
    _save({"payload": _getattr_chain()}, in_tmp / "bad.pt")
    torch.load(in_tmp / "bad.pt", weights_only=False)
    assert (in_tmp / MARKER).exists()


@pytest.mark.parametrize("module,name", [("torch._utils", "os.system"), ("collections", "os.system"),
                                         ("torch", "load"), ("pickle", "loads"), ("builtins", "__import__"),
                                         ("torch.nn.modules.module", "os.system")])
def test_globals_off_the_allow_list_are_refused(module: str, name: str, in_tmp: Path) -> None:
    pickled = b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) \
        + name.encode() + b"\x93X\x04\x00\x00\x00true\x85R."
    path = _torch_zip(in_tmp / "crafted.pt", pickled)
    with pytest.raises(ck.UnsafeCheckpointError, match=f"references {module}.{name}"):
        ck.read_state_dict(path)


def test_getattr_result_may_not_be_called(in_tmp: Path, fake_lvdm: types.SimpleNamespace) -> None:
    module = fake_lvdm.CrossAttention(4)
    path = _save({"m": module, "x": Call(Call(getattr, module, "native_forward"), torch.ones(1))}, in_tmp / "g.pt")
    with pytest.raises(ck.UnsafeCheckpointError, match=r"builtins\.getattr\(\.\.\., 'native_forward'\)"):
        ck.read_state_dict(path)


def test_reduce_hidden_inside_a_pickled_model_is_refused(in_tmp: Path, fake_lvdm: types.SimpleNamespace,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_lvdm.LatentDiffusion()
    model.first_stage_model.hidden = Call(os.system, f"touch {MARKER}")
    path = _save(model, in_tmp / "merged.pt")
    fake_lvdm.unregister(monkeypatch)
    with pytest.raises(ck.UnsafeCheckpointError, match=f"{os.system.__module__}.system"):
        ck.read_state_dict(path)
    assert not (in_tmp / MARKER).exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused(in_tmp: Path) -> None:
    path = in_tmp / "script.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    with pytest.raises(ck.CheckpointError):
        ck.read_state_dict(path)


# ----------------------------------------------------------------------------------- the pickled module

def _register(module: types.ModuleType, obj: Any) -> Any:
    obj.__module__, obj.__qualname__ = module.__name__, obj.__name__
    setattr(module, obj.__name__, obj)
    return obj


@pytest.fixture
def fake_lvdm(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Reference-style classes living in ``lvdm.*`` modules, importable only during the test."""
    names = ["lvdm", "lvdm.basics", "lvdm.modules", "lvdm.modules.attention", "lvdm.models", "lvdm.models.ddpm3d",
             "open_clip", "open_clip.model"]
    mods = {name: types.ModuleType(name) for name in names}
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)

    def disabled_train(self: nn.Module, mode: bool = True) -> nn.Module:
        return self

    class CrossAttention(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))
            self.forward = self.native_forward  # bound at construction, as the reference does

        def native_forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.to_out(self.to_q(x))

    class CLIP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token_embedding = nn.Embedding(10, 4)
            self.positional_embedding = nn.Parameter(torch.randn(77, 4))
            self.attn = nn.MultiheadAttention(4, 1)
            self.ln_final = nn.LayerNorm(4)
            self.register_buffer("attn_mask", torch.full((77, 77), float("-inf")).triu(1), persistent=False)

    class LatentDiffusion(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Module()
            self.model.diffusion_model = nn.ModuleList([CrossAttention(4), CrossAttention(4)])
            self.first_stage_model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
            self.cond_stage_model = nn.Module()
            self.cond_stage_model.model = CLIP()
            self.cond_stage_model.train = disabled_train
            self.register_buffer("betas", torch.linspace(0.1, 0.2, 10))
            self.register_buffer("lvlb_weights", torch.ones(10), persistent=False)
            self.register_buffer("absent", None)
            self.register_parameter("unused", None)
            self.logvar = torch.zeros(10)  # a plain tensor attribute, not a buffer
            self.where, self.dtype_, self.tags = torch.device("cpu"), torch.float32, {"a", "b"}

    _register(mods["lvdm.basics"], disabled_train)
    _register(mods["lvdm.modules.attention"], CrossAttention)
    _register(mods["open_clip.model"], CLIP)
    _register(mods["lvdm.models.ddpm3d"], LatentDiffusion)

    def unregister(mp: pytest.MonkeyPatch) -> None:
        for name in names:
            mp.delitem(sys.modules, name)

    return types.SimpleNamespace(CrossAttention=CrossAttention, LatentDiffusion=LatentDiffusion,
                                 unregister=unregister)


def _assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def test_pickled_module_state_dict_is_exact(in_tmp: Path, fake_lvdm: types.SimpleNamespace,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_lvdm.LatentDiffusion()
    path = _save(model, in_tmp / "tiny_merged_all.pt")
    assert b"getattr" in zipfile.ZipFile(path).read("tiny_merged_all/data.pkl")
    fake_lvdm.unregister(monkeypatch)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    fmt, sd = ck.read_checkpoint(path)
    assert fmt == "pickled_module"
    _assert_same(sd, model.state_dict())
    assert "cond_stage_model.model.attn_mask" not in sd and "lvlb_weights" not in sd and "logvar" not in sd


def test_stub_keeps_the_pickled_state_inert(in_tmp: Path, fake_lvdm: types.SimpleNamespace,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(fake_lvdm.CrossAttention(4), in_tmp / "attn.pt")
    fake_lvdm.unregister(monkeypatch)
    obj = ck.load_object(path)
    assert isinstance(obj, ck.StubModule) and type(obj).__module__ == "lvdm.modules.attention"
    assert isinstance(obj.forward, ck.AttributeMarker) and obj.forward.name == "native_forward"
    assert "lvdm.modules.attention" not in sys.modules


def test_golden_t2v_merged_file_reads_bit_exact(golden_dir: Path) -> None:
    fx = golden_dir / "t2v_checkpoint_tiny"
    meta = json.loads((fx / "fixture.json").read_text())
    fmt, sd = ck.read_checkpoint(fx / "tiny_merged_all.pt")
    assert fmt == "pickled_module"
    assert [[k, list(v.shape)] for k, v in sd.items()] == [entry[:2] for entry in meta["state_dict_keys"]]
    expected = load_file(str(fx / "tensors.safetensors"))
    for key, value in sd.items():
        assert value.dtype == expected[key].dtype and torch.equal(value, expected[key]), key


def test_golden_i2v_files_match_keys_json(golden_dir: Path) -> None:
    fx = golden_dir / "i2v_checkpoint_tiny"
    keys = json.loads((fx / "keys.json").read_text())
    assert sorted(ck.load_object(fx / "stage_1.ckpt")) == sorted(keys["stage_1.ckpt:top_level"])
    for name, fmt in (("stage_1.ckpt", "lightning"), ("unet.pt", "state_dict"), ("img_proj.pt", "state_dict")):
        got_fmt, sd = ck.read_checkpoint(fx / name)
        assert got_fmt == fmt
        assert {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in sd.items()} == keys[name]
        assert list(sd) == list(keys[name])
    reneg = ck.load_reneg(fx / "reneg_checkpoint.bin")
    assert [list(reneg.shape), str(reneg.dtype).removeprefix("torch.")] == keys["reneg_checkpoint.bin"]


# ------------------------------------------------------------------------------------------ containers

def test_lightning_state_dict_and_extras(in_tmp: Path) -> None:
    sd = _rand_sd("model.diffusion_model.a.weight", "betas")
    path = _save({"state_dict": sd, "epoch": 0, "global_step": 7}, in_tmp / "stage_1.ckpt")
    assert ck.detect_format(path) == "lightning"
    _assert_same(ck.read_state_dict(path), sd)


def test_lightning_with_non_tensor_extras_keeps_only_state_dict(in_tmp: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("omegaconf.dictconfig")
    monkeypatch.setitem(sys.modules, "omegaconf", types.ModuleType("omegaconf"))
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", mod)
    DictConfig = _register(mod, type("DictConfig", (), {}))
    hparams = DictConfig()
    hparams.lr = 1e-5
    sd = _rand_sd("model.diffusion_model.a.weight")
    path = _save({"state_dict": sd, "hyper_parameters": hparams}, in_tmp / "stage_1.ckpt")
    monkeypatch.delitem(sys.modules, "omegaconf.dictconfig")
    _assert_same(ck.read_state_dict(path), sd)


def test_dict_without_state_dict_is_an_error(in_tmp: Path) -> None:
    path = _save({"epoch": 3, "optimizer": {"lr": 0.1}}, in_tmp / "stage_1.ckpt")
    with pytest.raises(ck.CheckpointError, match="no 'state_dict'"):
        ck.read_state_dict(path)


def test_deepspeed_module_with_forward_module_prefix(in_tmp: Path) -> None:
    inner = _rand_sd("model.diffusion_model.framestride_embed.0.weight", "model.diffusion_model.out.2.bias")
    path = _save({"module": {"_forward_module." + k: v for k, v in inner.items()}}, in_tmp / "ds.pt")
    fmt, sd = ck.read_checkpoint(path)
    assert fmt == "deepspeed"
    assert list(sd) == ["model.diffusion_model.fps_embedding.0.weight", "model.diffusion_model.out.2.bias"]
    assert torch.equal(sd["model.diffusion_model.fps_embedding.0.weight"],
                       inner["model.diffusion_model.framestride_embed.0.weight"])


def test_bare_state_dict_and_split(in_tmp: Path) -> None:
    sd = _rand_sd("latents", "proj_in.weight")
    path = _save(sd, in_tmp / "img_proj.pt")
    assert ck.detect_format(path) == "state_dict"
    assert list(ck.split_components(ck.read_state_dict(path))) == ["resampler"]


@pytest.mark.parametrize("with_ema", [False, True])
def test_basicsr_prefers_params_ema(in_tmp: Path, with_ema: bool) -> None:
    params, ema = _rand_sd("conv_first.weight"), {"conv_first.weight": torch.zeros(3, 2)}
    obj = {"params": params, "params_ema": ema} if with_ema else {"params": params}
    path = _save(obj, in_tmp / "SR.pth")
    want = ema if with_ema else params
    assert ck.detect_format(path) == "basicsr"
    _assert_same(ck.read_state_dict(path), want)
    _assert_same(ck.load_basicsr(path), want)


def test_bare_tensor_reneg_and_safetensors(in_tmp: Path) -> None:
    emb = torch.randn(1, 77, 8)
    path = _save(emb, in_tmp / "reneg_checkpoint.bin")
    assert ck.detect_format(path) == "tensor"
    assert torch.equal(ck.load_reneg(path, 8), emb)
    save_file({"anything": emb}, str(in_tmp / "reneg.safetensors"))
    assert torch.equal(ck.load_reneg(in_tmp / "reneg.safetensors"), emb)
    assert ck.detect_format(in_tmp / "reneg.safetensors") == "safetensors"


@pytest.mark.parametrize("tensor,context_dim,message", [
    (torch.randn(1, 76, 8), None, r"\[1, 77, C\]"), (torch.randn(1, 77, 8), 1024, "does not match"),
    (torch.zeros(1, 77, 8, dtype=torch.int64), None, "float"),
])
def test_reneg_shape_is_validated(in_tmp: Path, tensor: torch.Tensor, context_dim: int | None,
                                  message: str) -> None:
    path = _save(tensor, in_tmp / "reneg.bin")
    with pytest.raises(ck.CheckpointError, match=message):
        ck.load_reneg(path, context_dim)


def test_reneg_safetensors_must_hold_one_tensor(in_tmp: Path) -> None:
    save_file({"a": torch.zeros(1, 77, 4), "b": torch.zeros(1, 77, 4)}, str(in_tmp / "two.safetensors"))
    with pytest.raises(ck.CheckpointError, match="exactly one"):
        ck.load_reneg(in_tmp / "two.safetensors")


def test_reneg_uncond_context_broadcasts_over_the_batch() -> None:
    reneg, tokens = torch.randn(1, 77, 8), torch.randn(3, 16, 8)
    out = reneg_uncond_context(reneg, tokens)
    assert out.shape == (3, 93, 8)
    assert torch.equal(out[:, :77], reneg.expand(3, -1, -1)) and torch.equal(out[:, 77:], tokens)
    with pytest.raises(ValueError, match="width"):
        reneg_uncond_context(reneg, torch.randn(3, 16, 4))


def test_legacy_container_is_read_and_checked(in_tmp: Path) -> None:
    sd = _rand_sd("conv_first.weight")
    torch.save({"params": sd}, in_tmp / "old.pth", _use_new_zipfile_serialization=False)
    _assert_same(ck.load_basicsr(in_tmp / "old.pth"), sd)
    torch.save({"payload": Call(os.system, f"touch {MARKER}")}, in_tmp / "bad.pth",
               _use_new_zipfile_serialization=False)
    with pytest.raises(ck.UnsafeCheckpointError, match=f"{os.system.__module__}.system"):
        ck.read_state_dict(in_tmp / "bad.pth")
    assert not (in_tmp / MARKER).exists()


def test_unreadable_and_missing_files(in_tmp: Path) -> None:
    (in_tmp / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ck.CheckpointError, match="cannot read junk.pt"):
        ck.read_state_dict(in_tmp / "junk.pt")
    with pytest.raises(ck.CheckpointError, match="no such file"):
        ck.read_state_dict(in_tmp / "missing.pt")


# ---------------------------------------------------------------------------------------- config, split

def _meta_tensors(*manifests: str, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    out = {}
    for name in manifests:
        for key, shape in json.loads((MANIFESTS / name).read_text()).items():
            if not key.startswith(skip) or not skip:
                out[key] = torch.empty(shape, device="meta")
    return out


@pytest.mark.parametrize("unet_manifest,preset", [("t2v_unet_09B.json", T2V_09B), ("t2v_unet_07B.json", T2V_07B),
                                                  ("i2v_unet_09B.json", I2V_09B)])
def test_infer_config_on_official_shapes_gives_the_presets(unet_manifest: str, preset: ModelConfig) -> None:
    if preset is I2V_09B:
        sd = _meta_tensors("i2v_stage1_full.json")
    else:
        sd = _meta_tensors("i2v_stage1_full.json")
        sd = {k: v for k, v in sd.items() if not k.startswith(("model.diffusion_model.", "embedder.",
                                                                 "image_proj_model."))}
        sd.update(_meta_tensors(unet_manifest))
    components = ck.split_components(sd)
    assert ck.infer_config(components) == preset


def test_split_components_strips_prefixes() -> None:
    sd = _meta_tensors("i2v_stage1_full.json")
    parts = ck.split_components(sd)
    counts = {name: len(part) for name, part in parts.items()}
    assert counts == {"schedule": 13, "unet": 976, "vae": 248, "text_encoder": 294, "image_encoder": 398,
                      "resampler": 51}
    assert "time_embed.0.weight" in parts["unet"] and "latents" in parts["resampler"]
    with pytest.raises(ck.CheckpointError, match="no known component"):
        ck.split_components({**sd, "ema.model.x": torch.zeros(1)})


def test_given_config_is_checked_against_the_weights(golden_dir: Path) -> None:
    fx = golden_dir / "t2v_checkpoint_tiny"
    meta = json.loads((fx / "fixture.json").read_text())
    config = ModelConfig.from_official("tiny", meta["config"]["model"], meta["config"]["open_clip_model_cfg"])
    components = ck.split_components(ck.read_state_dict(fx / "tiny_merged_all.pt"))
    assert ck.infer_config(components, config) is config
    with pytest.raises(ck.CheckpointError, match="unet.context_dim"):
        ck.infer_config(components, config.replace(unet=dict(config.unet, context_dim=16)))


# ------------------------------------------------------------------------------------------- conversion

def _fixture_config(fx: Path) -> ModelConfig:
    meta = json.loads((fx / "fixture.json").read_text())
    return ModelConfig.from_official(fx.name, meta["config"]["model"], meta["config"]["open_clip_model_cfg"])


def test_convert_round_trips_and_reruns_are_harmless(golden_dir: Path, tmp_path: Path) -> None:
    fx = golden_dir / "t2v_checkpoint_tiny"
    config = _fixture_config(fx)
    out = ck.convert(fx / "tiny_merged_all.pt", tmp_path / "conv", config)
    loaded_config, components = ck.load_converted(out)
    assert loaded_config == config
    expected = ck.split_components(ck.read_state_dict(fx / "tiny_merged_all.pt"))
    assert set(components) == set(expected) == {"unet", "vae", "text_encoder", "schedule"}
    for name, part in expected.items():
        assert set(components[name]) == set(part)
        assert all(torch.equal(components[name][k], v) and components[name][k].dtype == v.dtype
                   for k, v in part.items())
    assert json.loads((out / "unet.json").read_text()) == config.unet
    assert json.loads((out / "hummingbird.json").read_text())["source_format"] == "pickled_module"

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    ck.convert(fx / "tiny_merged_all.pt", out, config)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    (out / "vae.safetensors").write_bytes(b"something else")
    with pytest.raises(ck.CheckpointError, match="vae.safetensors exists with different content"):
        ck.convert(fx / "tiny_merged_all.pt", out, config)
    assert (out / "vae.safetensors").read_bytes() == b"something else"
    ck.convert(fx / "tiny_merged_all.pt", out, config, overwrite=True)
    assert ck.load_converted(out)[1]["vae"].keys() == expected["vae"].keys()


def test_convert_i2v_with_overrides_and_reneg(golden_dir: Path, tmp_path: Path) -> None:
    fx = golden_dir / "i2v_checkpoint_tiny"
    out = ck.convert(fx / "stage_1.ckpt", tmp_path / "conv", _fixture_config(fx), unet=fx / "unet.pt",
                     img_proj=fx / "img_proj.pt", reneg=fx / "reneg_checkpoint.bin")
    _, components = ck.load_converted(out)
    unet = ck.read_state_dict(fx / "unet.pt")
    assert all(components["unet"][k].dtype == torch.bfloat16 and torch.equal(components["unet"][k], v)
               for k, v in unet.items())
    resampler = ck.read_state_dict(fx / "img_proj.pt")
    assert all(torch.equal(components["resampler"][k], v) for k, v in resampler.items())
    assert torch.equal(ck.load_reneg(out / "reneg.safetensors"), ck.load_reneg(fx / "reneg_checkpoint.bin"))
    assert set(components) == {"schedule", "unet", "vae", "text_encoder", "image_encoder", "resampler", "reneg"}


def test_convert_refuses_a_mismatched_override(golden_dir: Path, tmp_path: Path) -> None:
    fx = golden_dir / "i2v_checkpoint_tiny"
    with pytest.raises(ck.CheckpointError, match=r"holds \['resampler'\] weights, expected unet"):
        ck.convert(fx / "stage_1.ckpt", tmp_path / "conv", _fixture_config(fx), unet=fx / "img_proj.pt")


# ------------------------------------------------------------------------------------------------- CLI

def test_cli_inspect_reports_a_checkpoint(golden_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(golden_dir / "i2v_checkpoint_tiny" / "stage_1.ckpt")]) == 0
    report = capsys.readouterr().out
    assert "lightning" in report and "resampler" in report and "float32" in report


def test_cli_inspect_refuses_with_status_2(golden_dir: Path, in_tmp: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(golden_dir / "security_pickle" / "malicious_reduce.pt")]) == 2
    assert "posix.system" in capsys.readouterr().err
    assert not list(in_tmp.glob("HB_PICKLE_CODE_EXECUTED*"))
    (in_tmp / "junk.bin").write_bytes(b"\x00" * 32)
    assert main(["inspect", str(in_tmp / "junk.bin")]) == 2
    assert main(["inspect", str(in_tmp / "missing.pt")]) == 2


def test_cli_convert(golden_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = golden_dir / "t2v_checkpoint_tiny"
    assert main(["convert", str(fx / "tiny_merged_all.pt"), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "unet.safetensors").is_file()
    (tmp_path / "c" / "unet.json").write_text("{}")
    assert main(["convert", str(fx / "tiny_merged_all.pt"), "--out", str(tmp_path / "c")]) == 2
    assert "unet.json exists with different content" in capsys.readouterr().err
