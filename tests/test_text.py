"""OpenCLIP tokenizer (offline, exact ids) and the penultimate-layer text tower."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import MANIFESTS, REPO

from hummingbird.configs import I2V_09B, T2V_TINY
from hummingbird.golden import run_fixture
from hummingbird.text import (EOT_ID, SOT_ID, TextEncoder, build_text_encoder, count_tokens, openclip_text_to_hf,
                              tokenize)


def _row(ids: list[int]) -> list[int]:
    return ids + [0] * (77 - len(ids))


def test_known_ids():
    ids = tokenize(["a photo of a cat", ""])
    assert ids.dtype == torch.long and ids.shape == (2, 77)
    assert ids[0].tolist() == _row([49406, 320, 1125, 539, 320, 2368, 49407])
    assert ids[1].tolist() == _row([49406, 49407])


def test_exclamation_mark_is_a_word_not_padding():
    # "!" is id 0 without the end-of-word suffix; as a word it is "!</w>" = 256
    assert tokenize(["wow!"])[0, :4].tolist() == [SOT_ID, 2781, 256, EOT_ID]


def test_special_token_spelling_only_where_openclip_isolates_it():
    assert tokenize(["a <end_of_text>"])[0, :4].tolist() == [SOT_ID, 320, EOT_ID, EOT_ID]
    glued = tokenize(["a:<end_of_text>"])[0].tolist()
    assert glued.count(EOT_ID) == 1 and glued[2] != EOT_ID


def test_cleaning_like_openclip():
    messy = "  A  Photo\tof\n&amp;amp; a CAT  "
    assert torch.equal(tokenize([messy]), tokenize(["a photo of & a cat"]))
    assert count_tokens("a photo of a cat") == 5


def test_truncation_keeps_start_75_tokens_end():
    fits, cut = " ".join(["cat"] * 75), " ".join(["cat"] * 80)
    assert count_tokens(fits) == 75 and count_tokens(cut) == 80
    ids = tokenize([fits, cut])
    expected = [SOT_ID] + [2368] * 75 + [EOT_ID]
    assert ids[0].tolist() == expected
    assert ids[1].tolist() == expected


def test_rejects_a_bare_string():
    with pytest.raises(ValueError, match="list of strings"):
        tokenize("a cat")


def test_tokenizer_needs_no_hub(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO))
    code = "from hummingbird.text import tokenize; print(tokenize(['a photo of a cat'])[0, :7].tolist())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[49406, 320, 1125, 539, 320, 2368, 49407]"
    assert not (tmp_path / "hf" / "hub").exists()


def test_golden_text_encoder(golden_dir):
    for path in sorted(golden_dir.glob("text_encoder*")):
        row = run_fixture(path)
        assert row.passed, f"{row.name}: {row.detail}"


def _meta_state_dict(prefix: str) -> dict[str, torch.Tensor]:
    manifest = json.loads((MANIFESTS / "i2v_stage1_full.json").read_text())
    return {k[len(prefix):]: torch.empty(shape, device="meta") for k, shape in manifest.items() if k.startswith(prefix)}


def test_conversion_covers_the_full_text_tower():
    sd = _meta_state_dict("cond_stage_model.model.")
    converted = openclip_text_to_hf(sd, I2V_09B.text)
    with torch.device("meta"):
        model = build_text_encoder(I2V_09B.text)
    assert model.config.num_hidden_layers == 23 and model.config.hidden_act == "gelu"
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


def _tiny_openclip_state_dict() -> dict[str, torch.Tensor]:
    cfg = T2V_TINY.text
    width, blocks = cfg["width"], cfg["layers"]
    gen = torch.Generator().manual_seed(0)
    shapes = {"token_embedding.weight": (cfg["vocab_size"], width), "positional_embedding": (77, width),
              "ln_final.weight": (width,), "ln_final.bias": (width,), "text_projection": (width, width),
              "logit_scale": ()}
    for i in range(blocks):
        block = f"transformer.resblocks.{i}."
        shapes.update({block + "attn.in_proj_weight": (3 * width, width), block + "attn.in_proj_bias": (3 * width,),
                       block + "attn.out_proj.weight": (width, width), block + "attn.out_proj.bias": (width,),
                       block + "mlp.c_fc.weight": (4 * width, width), block + "mlp.c_fc.bias": (4 * width,),
                       block + "mlp.c_proj.weight": (width, 4 * width), block + "mlp.c_proj.bias": (width,)})
        for norm in ("ln_1", "ln_2"):
            shapes.update({f"{block}{norm}.weight": (width,), f"{block}{norm}.bias": (width,)})
    return {k: torch.randn(shape, generator=gen) * 0.1 for k, shape in shapes.items()}


def test_conversion_rejects_unknown_and_extra_blocks():
    sd = _tiny_openclip_state_dict()
    with pytest.raises(ValueError, match="unexpected OpenCLIP text key"):
        openclip_text_to_hf({**sd, "transformer.resblocks.0.attn.extra.weight": torch.zeros(1)}, T2V_TINY.text)
    with pytest.raises(ValueError, match="beyond the configured"):
        openclip_text_to_hf({**sd, "transformer.resblocks.3.ln_1.weight": torch.zeros(1)}, T2V_TINY.text)
    with pytest.raises(ValueError, match="layers must be at least 2"):
        openclip_text_to_hf(sd, dict(T2V_TINY.text, layers=1))


def test_encoder_ignores_the_last_block_and_has_no_padding_mask():
    sd = _tiny_openclip_state_dict()
    encoder = TextEncoder.from_openclip_state_dict(sd, T2V_TINY.text)
    out = encoder.encode(["a cat", "a photo of a dog"])
    assert out.shape == (2, 77, T2V_TINY.text["width"])
    changed = dict(sd, **{"transformer.resblocks.2.mlp.c_fc.weight": torch.zeros(128, 32)})
    assert torch.equal(TextEncoder.from_openclip_state_dict(changed, T2V_TINY.text).encode(["a cat"]), out[:1])
    # every position, padding included, sees the earlier tokens: a padding mask would change them
    other = encoder.encode(["a dog"])
    assert not torch.allclose(other[0, 10], out[0, 10])
    assert encoder.to(dtype=torch.bfloat16).encode(["a cat"]).dtype == torch.bfloat16


def test_random_encoder_shapes():
    torch.manual_seed(0)
    out = TextEncoder.random(T2V_TINY.text).encode(["a cat", ""])
    assert out.shape == (2, 77, T2V_TINY.text["width"]) and torch.isfinite(out).all()
