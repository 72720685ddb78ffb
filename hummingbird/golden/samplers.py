"""Golden checks of the two sampling loops (``t2v_sampler``, ``i2v_sampler``)."""

from __future__ import annotations

import torch

from hummingbird.configs import unet_params_from_official
from hummingbird.denoisers import i2v_predictor, t2v_predictor
from hummingbird.golden import Fixture
from hummingbird.schedulers import ConsistencySampler, DDIMSampler, denoise
from hummingbird.unet import HummingbirdUNet, guidance_embedding

SCHEDULE_KEYS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                 "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                 "posterior_mean_coef1", "posterior_mean_coef2", "scale_arr")


def _unet(fx: Fixture, weights: dict[str, torch.Tensor]) -> HummingbirdUNet:
    cfg = fx.config.get("unet_config") or fx.config["model"]["params"]["unet_config"]
    unet = HummingbirdUNet(**unet_params_from_official(cfg["params"], cfg.get("target", "")))
    unet.load_state_dict(weights, strict=True)
    return unet.eval()


def check_t2v_sampler(fx: Fixture) -> None:
    unet = _unet(fx, fx.weights())
    call = fx.call
    sampler = ConsistencySampler(call["num_inference_steps"])
    context = fx["context"]
    predict = t2v_predictor(unet, context, call["guidance_scale"], call["fps"])
    eps_steps, denoised_steps = [], []

    def record(index: int, t: int, eps: torch.Tensor, x: torch.Tensor, denoised: torch.Tensor) -> None:
        eps_steps.append(eps)
        denoised_steps.append(denoised)

    latents = denoise(sampler, predict, fx["latents_init"], list(fx["noises"]), record)
    fx.compare("timesteps", torch.tensor(sampler.timesteps))
    fx.compare("alphas_cumprod", sampler.alphas_cumprod)
    fx.compare("w_embedding", guidance_embedding(torch.full((context.shape[0],), call["guidance_scale"])))
    fx.compare("eps_steps", torch.stack(eps_steps))
    fx.compare("denoised_steps", torch.stack(denoised_steps))
    fx.compare("latents_out", latents)


def check_i2v_sampler(fx: Fixture) -> None:
    weights = fx.weights()
    schedule = {k: weights.pop(k) for k in SCHEDULE_KEYS if k in weights}
    unet = _unet(fx, weights)
    call = fx.call
    sampler = DDIMSampler(schedule["alphas_cumprod"], call["ddim_steps"], call["ddim_eta"], schedule["scale_arr"])
    c = sampler.constants
    for name, value in (("ddim_timesteps", c.timesteps), ("ddim_alphas", c.alphas),
                        ("ddim_alphas_prev", c.alphas_prev), ("ddim_sigmas", c.sigmas),
                        ("alphas_cumprod", schedule["alphas_cumprod"]), ("scale_arr", schedule["scale_arr"])):
        fx.compare(name, value)
    text, tokens, uc_tokens = fx["text_emb"], fx["image_tokens"], fx["uc_image_tokens"]
    cond = torch.cat([text, tokens], dim=1)
    fx.compare("cond_context", cond)
    x_T, fs = fx["x_T"], fx["fs"]
    for run in call["negatives"]:
        suffix = run["suffix"]
        negative = fx[run["input"]].expand(text.shape[0], -1, -1)
        uncond = torch.cat([negative, uc_tokens], dim=1)
        fx.compare(f"uncond_context{suffix}", uncond)
        predict_branch = i2v_predictor(unet, uncond, None, fx["image_latent"], fs, 1.0, 0.0)
        fx.compare(f"v_uncond_step0{suffix}", predict_branch(x_T, sampler.timesteps[0]))
        x0s, xs = [], []

        def record(index: int, t: int, v: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> None:
            x0s.append(x0)
            xs.append(x)

        predict = i2v_predictor(unet, cond, uncond, fx["image_latent"], fs,
                                call["unconditional_guidance_scale"], call["guidance_rescale"])
        final = denoise(sampler, predict, x_T, list(fx["step_noise"]), record)
        fx.compare(f"final_latents{suffix}", final)
        if suffix == "":
            cond_branch = i2v_predictor(unet, cond, None, fx["image_latent"], fs, 1.0, 0.0)
            fx.compare("v_cond_step0", cond_branch(x_T, sampler.timesteps[0]))
            fx.compare("x0_per_step", torch.stack(x0s))
            fx.compare("x_per_step", torch.stack(xs))
