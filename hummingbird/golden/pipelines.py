"""Golden checks of the release files end to end (``t2v_checkpoint``, ``i2v_checkpoint``).

Both go through ``from_release``, the same path a downloaded file takes; only the configuration comes from the
fixture, because tiny widths hide head counts that the release rule would otherwise fix.
"""

from __future__ import annotations

import json

import torch

from hummingbird import checkpoints
from hummingbird.configs import ModelConfig
from hummingbird.golden import Fixture
from hummingbird.pipelines import I2VPipeline, T2VPipeline
from hummingbird.text import tokenize
from hummingbird.vae import to_uint8


def _config(fx: Fixture, name: str) -> ModelConfig:
    return ModelConfig.from_official(name, fx.config["model"], fx.config["open_clip_model_cfg"])


def check_t2v_checkpoint(fx: Fixture) -> None:
    path = fx.file()
    state = checkpoints.read_state_dict(path)
    expected = [[key, shape] for key, shape in fx.meta["state_dict_keys"]]
    got = [[key, list(value.shape)] for key, value in state.items()]
    fx.record("state_dict_keys", got == expected, f"{len(got)} keys read, {len(expected)} expected, in order")
    for key in fx.meta["outputs"]:
        if key in state:
            fx.compare(key, state[key], tolerance={"atol": 0.0, "rtol": 0.0})
    call = fx.call
    pipe = T2VPipeline.from_release(path, config=_config(fx, "t2v-checkpoint-fixture"), device="cpu",
                                    dtype=torch.float32)
    context = pipe.encode_prompt([call["prompt"]])
    fx.compare("text_embeddings", context)
    denoised = []
    latents = pipe.sample(context, fx["latents_init"], list(fx["noises"]),
                          call["num_inference_steps"], call["guidance_scale"], call["fps"],
                          lambda i, t, eps, x, x0: denoised.append(x0))
    fx.compare("denoised_steps", torch.stack(denoised))
    fx.compare("latents_out", latents)
    video = pipe.decode(latents)
    fx.compare("video", video)
    fx.compare("frames_uint8", to_uint8(fx["video"]), tolerance={"atol": 0.0, "rtol": 0.0})
    result = pipe(call["prompt"], steps=call["num_inference_steps"], frames=call["frames"],
                  height=call["height"], width=call["width"], guidance=call["guidance_scale"], fps=call["fps"],
                  latents=fx["latents_init"], noises=list(fx["noises"]))
    fx.compare("frames_uint8", torch.from_numpy(result.frames)[None])


def check_i2v_checkpoint(fx: Fixture) -> None:
    expected = json.loads(fx.file(fx.call["expected_keys_file"]).read_text())
    for name in ("stage_1.ckpt", "unet.pt", "img_proj.pt"):
        state = checkpoints.read_state_dict(fx.file(name))
        got = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()}
        fx.record(f"{name} keys", got == expected[name],
                  f"{len(got)} keys read, {len(expected[name])} expected (with shapes and dtypes)")
    call = fx.call
    pipe = I2VPipeline.from_release(fx.file("stage_1.ckpt"), config=_config(fx, "i2v-checkpoint-fixture"),
                                    device="cpu", dtype=torch.float32)
    fx.compare("prompt_token_ids", tokenize([call["prompt"]]))
    fx.compare("prompt_embedding", pipe.encode_prompt([call["prompt"]]))
    fx.compare("empty_prompt_embedding", pipe.encode_prompt([""]))
    image = fx["image"].numpy()
    posterior = fx["vae_posterior_noise"][:1]
    frame, latent = pipe.prepare_image(image, call["height"], call["width"], "reference", posterior)
    fx.compare("image_latent", latent)
    cond, uncond = pipe.contexts(frame, call["prompt"], reneg=True, negative_prompt=None)
    fx.compare("cond_context", cond)
    fx.compare("uncond_context", uncond)
    noises = [posterior, fx["x_T"], *fx["step_noise"]]
    result = pipe(image, call["prompt"], steps=call["ddim_steps"], frames=call["video_length"],
                  height=call["height"], width=call["width"], guidance=call["unconditional_guidance_scale"],
                  guidance_rescale=call["guidance_rescale"], fps=call["frame_stride"], eta=call["ddim_eta"],
                  reneg=True, aspect="reference", noises=noises)
    fx.compare("final_latents", result.latents)
    decoded = pipe.decode(result.latents[:, :, :1])[0, :, 0]
    fx.compare("decoded_frame0", decoded)
    stored = to_uint8(fx["decoded_frame0"][None, :, None])[0, 0]
    fx.compare("frames_u8", stored, expected=fx["frames_u8"][0], tolerance={"atol": 0.0, "rtol": 0.0})
    fx.compare("frames_u8", torch.from_numpy(result.frames))
