"""Where the release weights come from: a local file, a converted folder, or the official hub repos."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hummingbird.checkpoints import MANIFEST_FILE

T2V_REPO = "amd/AMD-Hummingbird-T2V"
I2V_REPO = "amd/AMD-Hummingbird-I2V"
T2V_FILES = {"0.9b": "09B_merged_all.pt", "0.7b": "07B_merged_all.pt"}
I2V_FILES = {"stage_1": "stage_1.ckpt", "unet": "unet.pt", "img_proj": "img_proj.pt",
             "reneg": "reneg_checkpoint.bin"}
SR_FILE = "SR.pth"


class WeightsUnavailableError(RuntimeError):
    """The weights could not be found locally nor downloaded; the message says what to get and where."""


@dataclass(frozen=True)
class I2VFiles:
    """The I2V release files; the overrides and the ReNeg tensor are optional."""

    stage_1: Path
    unet: Path | None = None
    img_proj: Path | None = None
    reneg: Path | None = None


def is_converted_folder(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file()


def looks_like_repo_id(source: str) -> bool:
    """``owner/name`` that is not an existing local path."""
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).exists() and not source.startswith(".")


def download(repo: str, filename: str, optional: bool = False) -> Path | None:
    """Fetch one file from the hub (or its local cache); a clear error when that is impossible."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename))
    except Exception as exc:  # offline, missing file, no access: all end the same way for the user
        if optional:
            return None
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        reason = "downloads are disabled (HF_HUB_OFFLINE is set)" if offline else f"{type(exc).__name__}: {exc}"
        raise WeightsUnavailableError(
            f"{filename} from the Hugging Face repo {repo} is not available ({reason}). Download it with "
            f"`huggingface-cli download {repo} {filename} --local-dir weights/` and pass that file (or the "
            f"weights/ folder) as the weights source.") from exc


def _missing(path: Path, what: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(f"{what} not found: {path}")


def resolve_t2v(source: str | os.PathLike | None, variant: str) -> Path:
    """A T2V release file or converted folder for ``variant`` ("0.9b" or "0.7b")."""
    if variant not in T2V_FILES:
        raise ValueError(f"variant must be one of {sorted(T2V_FILES)}, got {variant!r}")
    filename = T2V_FILES[variant]
    if source is None or (isinstance(source, str) and looks_like_repo_id(source)):
        return download(str(source or T2V_REPO), filename)
    path = Path(source).expanduser()
    if path.is_file() or is_converted_folder(path):
        return path
    if path.is_dir():
        if (path / filename).is_file():
            return path / filename
        raise _missing(path / filename, f"the T2V {variant} release file")
    raise _missing(path, "T2V weights")


def resolve_i2v(source: str | os.PathLike | None) -> I2VFiles | Path:
    """The I2V release files (from a folder, a ``stage_1.ckpt`` path or the hub) or a converted folder."""
    if source is None or (isinstance(source, str) and looks_like_repo_id(source)):
        repo = str(source or I2V_REPO)
        return I2VFiles(stage_1=download(repo, I2V_FILES["stage_1"]),
                        unet=download(repo, I2V_FILES["unet"], optional=True),
                        img_proj=download(repo, I2V_FILES["img_proj"], optional=True),
                        reneg=download(repo, I2V_FILES["reneg"], optional=True))
    path = Path(source).expanduser()
    if is_converted_folder(path):
        return path
    folder = path if path.is_dir() else path.parent
    stage_1 = path if path.is_file() else folder / I2V_FILES["stage_1"]
    if not stage_1.is_file():
        raise _missing(stage_1, "the I2V release file stage_1.ckpt")

    def optional(name: str) -> Path | None:
        candidate = folder / I2V_FILES[name]
        return candidate if candidate.is_file() else None

    return I2VFiles(stage_1=stage_1, unet=optional("unet"), img_proj=optional("img_proj"),
                    reneg=optional("reneg"))


def resolve_sr(source: str | os.PathLike | None) -> Path:
    """Hummingbird VSR's ``SR.pth``: a file, a folder holding it, or a hub repo (the I2V repo by default)."""
    if source is None or (isinstance(source, str) and looks_like_repo_id(source)):
        return download(str(source or I2V_REPO), SR_FILE)
    path = Path(source).expanduser()
    path = path / SR_FILE if path.is_dir() else path
    if not path.is_file():
        raise _missing(path, "Hummingbird VSR weights")
    return path
