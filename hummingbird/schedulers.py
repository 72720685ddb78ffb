"""Samplers: the T2V-Turbo consistency sampler and the I2V v-prediction DDIM sampler.

Both take their noise as explicit tensors (the caller owns the RNG policy) and share one loop shape,
:func:`denoise`: ``predict(x, t)`` gives the model output at each timestep, ``sampler.step`` turns it into the
next latent, and ``sampler.result`` picks what the loop returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
from diffusers import DDIMScheduler, LCMScheduler

# The T2V-Turbo scheduler of the release, as a diffusers LCMScheduler (spec t2v.md §5).
LCM_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  prediction_type="epsilon", original_inference_steps=50, timestep_scaling=10.0,
                  set_alpha_to_one=True, clip_sample=False, thresholding=False)
LCM_ORIGIN_STEPS = 50
MAX_T2V_STEPS = LCM_ORIGIN_STEPS
MAX_I2V_STEPS = 1000


def consistency_timesteps(steps: int, origin_steps: int = LCM_ORIGIN_STEPS) -> list[int]:
    """The release's timesteps: ``(1..origin)*c - 1`` reversed, every ``origin // steps``-th, first ``steps``.

    4 steps give [999, 759, 519, 279]; 8 steps [999, 879, 759, 639, 519, 399, 279, 159]. These differ from
    diffusers' own ``set_timesteps(num_inference_steps=n)`` choice, so they are always passed explicitly.
    """
    if not 1 <= steps <= origin_steps:
        raise ValueError(f"steps must be between 1 and {origin_steps} for the consistency sampler, got {steps}")
    c = 1000 // origin_steps
    origin = [(k + 1) * c - 1 for k in range(origin_steps)]
    return origin[::-1][:: origin_steps // steps][:steps]


def trailing_timesteps(steps: int) -> list[int]:
    """DDIM ``uniform_trailing`` timesteps, descending (16 steps: 999, 937, ..., 124, 61)."""
    if not 1 <= steps <= MAX_I2V_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_I2V_STEPS} for DDIM, got {steps}")
    scheduler = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


class Sampler(Protocol):
    timesteps: list[int]

    def step(self, index: int, model_output: torch.Tensor, x: torch.Tensor,
             noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One update: returns (next latent, the step's clean-sample estimate)."""

    def result(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """What sampling returns, given the last latent and the last clean estimate."""


class ConsistencySampler:
    """T2V-Turbo consistency (LCM) sampling: diffusers ``LCMScheduler`` with the release's timesteps.

    Per step: x0 = (x - sqrt(1-a) eps) / sqrt(a); denoised = c_out x0 + c_skip x; the next latent re-noises
    ``denoised`` to the next timestep (to the same one on the last step). The result is the last ``denoised``.
    """

    def __init__(self, steps: int) -> None:
        self.scheduler = LCMScheduler(**LCM_CONFIG)
        self.scheduler.set_timesteps(timesteps=consistency_timesteps(steps))
        self.timesteps = [int(t) for t in self.scheduler.timesteps]
        self.alphas_cumprod = self.scheduler.alphas_cumprod

    def step(self, index: int, model_output: torch.Tensor, x: torch.Tensor,
             noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.timesteps[index]
        alpha = self.alphas_cumprod[t].item()
        x0 = (x - math.sqrt(1 - alpha) * model_output) / math.sqrt(alpha)
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition_discrete(t)
        denoised = c_out * x0 + c_skip * x
        if len(self.timesteps) == 1 or noise is None:
            return denoised, denoised
        t_next = self.timesteps[min(index + 1, len(self.timesteps) - 1)]
        alpha_next = self.alphas_cumprod[t_next].item()
        return math.sqrt(alpha_next) * denoised + math.sqrt(1 - alpha_next) * noise, denoised

    def result(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return x0


@dataclass
class DDIMConstants:
    """Per-step constants in ascending timestep order (index 0 = smallest timestep)."""

    timesteps: torch.Tensor  # int64
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    x0_ratios: torch.Tensor


class DDIMSampler:
    """v-prediction DDIM with eta, trailing timesteps and the x0 dynamic rescale (spec i2v.md §8-9).

    The noise schedule is the one stored in the checkpoint (``alphas_cumprod``, ``scale_arr``): diffusers'
    ``DDIMScheduler`` recomputes it and steps to ``t - 1000 // steps``, which is not the trailing neighbour, so
    only its timestep spacing is reused here.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, steps: int, eta: float = 1.0,
                 scale_arr: torch.Tensor | None = None) -> None:
        if not 0.0 <= eta <= 1.0 or math.isnan(eta):
            raise ValueError(f"eta must be between 0 and 1, got {eta}")
        self.timesteps = trailing_timesteps(steps)
        self.constants = ddim_constants(alphas_cumprod.float(), self.timesteps[::-1], eta, scale_arr)

    def step(self, index: int, model_output: torch.Tensor, x: torch.Tensor,
             noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        i = len(self.timesteps) - 1 - index
        c = self.constants
        a, a_prev, sigma = c.alphas[i].item(), c.alphas_prev[i].item(), c.sigmas[i].item()
        eps = math.sqrt(a) * model_output + math.sqrt(1 - a) * x
        x0 = (math.sqrt(a) * x - math.sqrt(1 - a) * model_output) * c.x0_ratios[i].item()
        direction = math.sqrt(max(0.0, 1 - a_prev - sigma ** 2)) * eps
        x_prev = math.sqrt(a_prev) * x0 + direction
        if sigma > 0 and noise is not None:
            x_prev = x_prev + sigma * noise
        return x_prev, x0

    def result(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return x


def ddim_constants(alphas_cumprod: torch.Tensor, ascending: Sequence[int], eta: float,
                   scale_arr: torch.Tensor | None) -> DDIMConstants:
    """alphas, previous alphas (alphas_cumprod[0] before the first), sigmas and x0 rescale ratios."""
    ts = torch.tensor(list(ascending), dtype=torch.int64)
    alphas = alphas_cumprod[ts]
    alphas_prev = torch.cat([alphas_cumprod[:1], alphas[:-1]])
    a, a_prev = alphas.double(), alphas_prev.double()
    sigmas = (eta * torch.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))).float()
    ratios = torch.ones(len(ts))
    if scale_arr is not None:
        ratios[1:] = scale_arr[ts[:-1]] / scale_arr[ts[1:]]
    return DDIMConstants(ts, alphas, alphas_prev, sigmas, ratios)


def guided(cond: torch.Tensor, uncond: torch.Tensor, scale: float, rescale: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance with guidance rescale (the formula of diffusers' ``rescale_noise_cfg``)."""
    out = uncond + scale * (cond - uncond)
    if rescale > 0:
        dims = list(range(1, out.ndim))
        ratio = cond.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True)
        out = rescale * out * ratio + (1 - rescale) * out
    return out


StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor, torch.Tensor], None]


def denoise(sampler: Sampler, predict: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor,
            noises: Sequence[torch.Tensor | None], on_step: StepCallback | None = None) -> torch.Tensor:
    """Run ``sampler`` from the initial latent ``x``; ``noises[i]`` is the noise injected at step i.

    ``on_step(index, t, model_output, x_next, x0)`` is called after every step.
    """
    x0 = x
    for index, t in enumerate(sampler.timesteps):
        output = predict(x, t)
        x, x0 = sampler.step(index, output, x, noises[index])
        if on_step is not None:
            on_step(index, t, output, x, x0)
    return sampler.result(x, x0)
