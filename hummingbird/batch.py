"""Batch generation for benchmarks such as VBench: a prompt file in, one MP4 per (prompt, sample) out.

The same code runs as one process or under ``accelerate launch`` (one GPU per process). Every process builds
the same work list; the unfinished items are split between the processes. Videos are named as VBench expects,
``{prompt}-{k}.mp4``, and each process appends one JSON line per finished video to its own manifest shard
(``manifest.rank{R}.jsonl``), so concurrent writers never interleave; ``manifest.jsonl`` is their union, written
at the end. An item is finished when its MP4 (written under a temporary name, renamed when complete) and its
manifest line both exist; a restart skips finished items. Each MP4 is written on a writer thread while the next
video is generated (its seconds are the manifest's ``timings["write"]``). Each item's seed derives from the base
seed, the prompt and the sample number, so it is the same whatever the number of processes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from hummingbird.image import IMAGE_SUFFIXES
from hummingbird.pipelines import GenerationResult, I2VPipeline, T2VPipeline, load_pipeline
from hummingbird.video import write_mp4

TASKS = ("t2v", "i2v")
MANIFEST = "manifest.jsonl"
SHARD_GLOB = "manifest.rank*.jsonl"
MAX_SAMPLES = 1000
MAX_STEM_BYTES = 200  # leaves room for "-{k}.mp4" and the temporary name within the usual 255-byte limit
HASH_CHARS = 12
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
_HASHED = re.compile(rf"~[0-9a-f]{{{HASH_CHARS}}}$")
_PER_ITEM_ARGUMENTS = {"image", "prompt", "seed", "callback", "latents", "noises"}


@dataclass(frozen=True)
class Entry:
    """One line of the prompt file: a prompt and, for i2v, its image."""

    prompt: str
    image: Path | None = None


@dataclass(frozen=True)
class Item:
    """One video to make: ``index`` is its place in the global work list, ``sample`` the k of ``{prompt}-{k}``."""

    index: int
    prompt: str
    image: Path | None
    sample: int
    seed: int
    video: str


@dataclass(frozen=True)
class BatchJob:
    """What to generate. ``options`` are pipeline keyword arguments (steps, frames, ...; no seed), the pipeline's
    defaults apply to those left out; ``playback_fps`` is the frame rate of the files (default: the ``fps``
    setting). ``weights``: as for the ``t2v``/``i2v`` commands, a ``save_pretrained`` folder, or "tiny"."""

    task: str
    prompts: Path
    out: Path
    images: Path | None = None
    samples: int = 5
    seed: int = 0
    weights: str | None = None
    variant: str = "0.9b"
    options: dict[str, Any] = field(default_factory=dict)
    playback_fps: int | None = None


@dataclass(frozen=True)
class BatchResult:
    """Items in the work list, items found finished at the start, videos this process made, the manifest."""

    items: int
    skipped: int
    made: int
    manifest: Path


# ---------------------------------------------------------------- naming and seeds
def video_stem(prompt: str) -> str:
    """The file-name stem of ``prompt``: the prompt itself when it is a safe file name (no ``/``, ``\\`` or
    control characters, no leading dot or surrounding spaces, at most :data:`MAX_STEM_BYTES` bytes in UTF-8);
    otherwise a cleaned, shortened prefix, ``~`` and 12 hex digits of the prompt's SHA-256. A prompt kept as
    it is never ends like a hashed stem, so two different prompts only share a stem on a hash collision,
    which :func:`work_list` refuses."""
    if _is_safe_name(prompt):
        return prompt
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:HASH_CHARS]
    prefix = _UNSAFE.sub("_", prompt).strip().lstrip(".")
    prefix = prefix.encode("utf-8")[:MAX_STEM_BYTES - HASH_CHARS - 1].decode("utf-8", "ignore")
    return f"{prefix}~{digest}"


def _is_safe_name(prompt: str) -> bool:
    return (not _UNSAFE.search(prompt) and not prompt.startswith(".") and prompt == prompt.strip()
            and 0 < len(prompt.encode("utf-8")) <= MAX_STEM_BYTES and not _HASHED.search(prompt))


def item_seed(base_seed: int, prompt: str, sample: int) -> int:
    """The seed of sample ``sample`` of ``prompt``: a hash of the three, in [0, 2**31 - 1]."""
    digest = hashlib.sha256(f"{base_seed}\n{sample}\n{prompt}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 2**31


def work_list(entries: list[Entry], samples: int, base_seed: int) -> list[Item]:
    """Every (entry, sample) in order, with its seed and video file name; names are checked to be unique."""
    items = [Item(index * samples + k, entry.prompt, entry.image, k,
                  item_seed(base_seed, entry.prompt, k), f"{video_stem(entry.prompt)}-{k}.mp4")
             for index, entry in enumerate(entries) for k in range(samples)]
    owners: dict[str, str] = {}
    for item in items:
        other = owners.setdefault(item.video, item.prompt)
        if other != item.prompt:
            raise ValueError(f"the prompts {other!r} and {item.prompt!r} map to the same file {item.video}")
    return items


# ---------------------------------------------------------------- prompt files
def read_entries(path: Path, task: str, images: Path | None = None) -> list[Entry]:
    """The entries of a prompt file, in order, repeats dropped.

    ``.txt``: one prompt per line, blank lines skipped; for i2v the image is the file in ``images`` whose name
    without extension is the prompt (the VBench-I2V convention). ``.jsonl``: one object per line with
    ``"prompt"`` and, for i2v, ``"image"`` (an absolute path or one relative to ``images``); other keys are
    ignored.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not path.is_file():
        raise ValueError(f"prompt file not found: {path}")
    if images is not None and (task == "t2v" or not images.is_dir()):
        raise ValueError("--images is only for --task i2v" if task == "t2v" else f"--images {images} is not a folder")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        entries = _txt_entries(path, task, images)
    elif suffix == ".jsonl":
        entries = _jsonl_entries(path, task, images)
    else:
        raise ValueError(f"the prompt file must be .txt (one prompt per line) or .jsonl, got {path.name}")
    if not entries:
        raise ValueError(f"{path.name} holds no prompts")
    return _unique(entries)


def _txt_entries(path: Path, task: str, images: Path | None) -> list[Entry]:
    prompts = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if task == "t2v":
        return [Entry(prompt) for prompt in prompts]
    if images is None:
        raise ValueError("--task i2v with a .txt prompt file needs --images: the folder holding one image per "
                         "prompt, named after it (VBench-I2V: 'a cat.png' for the prompt 'a cat')")
    found: dict[str, list[Path]] = {}
    for image in sorted(images.iterdir()):
        if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
            found.setdefault(image.stem, []).append(image)
    missing = [prompt for prompt in prompts if prompt not in found]
    if missing:
        raise ValueError(f"{len(missing)} prompt(s) have no image named after them in {images} (VBench-I2V: "
                         f"the image file name without extension is the prompt), e.g. {missing[:3]}")
    for prompt in prompts:
        if len(found[prompt]) > 1:
            raise ValueError(f"several images are named after the prompt {prompt!r}: "
                             f"{', '.join(image.name for image in found[prompt])}")
    return [Entry(prompt, found[prompt][0]) for prompt in prompts]


def _jsonl_entries(path: Path, task: str, images: Path | None) -> list[Entry]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [_json_entry(line, task, images, f"{path.name} line {number}")
            for number, line in enumerate(lines, 1) if line.strip()]


def _json_entry(line: str, task: str, images: Path | None, where: str) -> Entry:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
        raise ValueError(f'{where}: expected an object with a non-empty "prompt"')
    image = record.get("image")
    if task == "t2v":
        if image is not None:
            raise ValueError(f'{where}: "image" is only for --task i2v')
        return Entry(record["prompt"])
    if not isinstance(image, str) or not image:
        raise ValueError(f'{where}: --task i2v needs an "image" path')
    return Entry(record["prompt"], _image_path(image, images, where))


def _image_path(image: str, images: Path | None, where: str) -> Path:
    path = Path(image).expanduser()
    if not path.is_absolute():
        if images is None:
            raise ValueError(f"{where}: the image path {image!r} is relative: give --images, the folder it is in")
        path = images / path
    if not path.is_file():
        raise ValueError(f"{where}: image not found: {path}")
    return path


def _unique(entries: list[Entry]) -> list[Entry]:
    """Entries without repeats; one prompt with two different images is an error (videos are named after it)."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        first = seen.setdefault(entry.prompt, entry)
        if first.image != entry.image:
            raise ValueError(f"the prompt {entry.prompt!r} comes with two images ({first.image}, {entry.image}); "
                             "videos are named after the prompt, so each prompt needs exactly one image")
    return list(seen.values())


# ---------------------------------------------------------------- manifest
def shard_path(out: Path, rank: int) -> Path:
    """The manifest shard that process ``rank`` appends to."""
    return out / f"manifest.rank{rank}.jsonl"


def read_manifest(out: Path) -> list[dict[str, Any]]:
    """The union of the manifest shards in ``out``: the latest record of each video that exists, in work-list
    order. A torn last line (a process killed while writing it) is ignored."""
    latest: dict[str, dict[str, Any]] = {}
    records = [record for shard in sorted(out.glob(SHARD_GLOB)) for record in _read_shard(shard)]
    for record in sorted(records, key=lambda r: r["created"]):
        if (out / record["video"]).is_file():
            latest[record["video"]] = record
    return sorted(latest.values(), key=lambda r: r["index"])


def _read_shard(shard: Path) -> list[dict[str, Any]]:
    *lines, _tail = shard.read_text(encoding="utf-8").split("\n")  # the tail is "" or a torn line
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError:
        raise ValueError(f"{shard} is corrupt; move it away to make its videos again") from None


def _drop_torn_line(shard: Path) -> None:
    """Cut a partly written last line, so that the next line starts clean."""
    data = shard.read_bytes() if shard.is_file() else b""
    if data and not data.endswith(b"\n"):
        with shard.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _append(shard: Path, record: dict[str, Any]) -> None:
    """Append one record as one JSON line and sync it to disk."""
    with shard.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_union(out: Path) -> Path:
    """Write :func:`read_manifest` to ``manifest.jsonl`` (atomically); return its path."""
    path = out / MANIFEST
    tmp = out / f".{MANIFEST}.partial"
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in read_manifest(out)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _signature(job: BatchJob, model: str) -> dict[str, Any]:
    """The settings all videos of one folder share; an option left out counts as the pipeline's default."""
    cls = T2VPipeline if job.task == "t2v" else I2VPipeline
    options = {name: parameter.default for name, parameter in inspect.signature(cls.__call__).parameters.items()
               if name not in _PER_ITEM_ARGUMENTS and parameter.default is not inspect.Parameter.empty}
    options.update(job.options)
    return {"task": job.task, "model": model, "seed": job.seed, **options,
            "playback_fps": job.playback_fps or options["fps"]}


def _check_settings(records: list[dict[str, Any]], signature: dict[str, Any], out: Path) -> None:
    """Refuse to add videos made with other settings to a folder."""
    for record in records:
        old = record["batch"]
        changed = [f"{key} {old.get(key)!r} -> {signature.get(key)!r}" for key in sorted(old.keys() | signature.keys())
                   if old.get(key) != signature.get(key)]
        if changed:
            raise ValueError(f"{out} holds videos made with other settings ({', '.join(changed)}); use the same "
                             "settings to resume, or another --out")


# ---------------------------------------------------------------- running
def validate(job: BatchJob, entries: list[Entry]) -> None:
    """Check the job's numbers and every prompt before any model is loaded."""
    for name, value, high in (("samples", job.samples, MAX_SAMPLES), ("playback_fps", job.playback_fps, 60)):
        if value is not None and (not isinstance(value, int) or not 1 <= value <= high):
            raise ValueError(f"{name} must be a whole number between 1 and {high}, got {value!r}")
    for entry in entries:
        try:
            if job.task == "t2v":
                T2VPipeline.validate(entry.prompt, seed=job.seed, **job.options)
            else:
                I2VPipeline.validate(entry.image, entry.prompt, seed=job.seed, **job.options)
        except ValueError as exc:
            raise ValueError(f"prompt {entry.prompt[:60]!r}: {exc}") from None


def process_state() -> PartialState:
    """accelerate's view of this process; CPU processes when asked (``--cpu``) or when there is no GPU."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def run(job: BatchJob) -> BatchResult:
    """Make the unfinished videos of ``job`` that fall to this process; see the module docstring."""
    entries = read_entries(job.prompts, job.task, job.images)
    validate(job, entries)
    items = work_list(entries, job.samples, job.seed)
    state = process_state()
    pipe = load_pipeline(job.task, job.weights, variant=job.variant, device=state.device)
    signature = _signature(job, pipe.name)
    job.out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        for partial in job.out.glob(".*.partial.mp4"):  # write_mp4's temporary files, left by a killed run
            partial.unlink(missing_ok=True)
    shard = shard_path(job.out, state.process_index)
    _drop_torn_line(shard)
    records = read_manifest(job.out)
    _check_settings(records, signature, job.out)
    done = {record["video"] for record in records}
    state.wait_for_everyone()  # every process has read the folder before any of them writes to it
    pending = [item for item in items if item.video not in done]
    extra = {"device": str(pipe.device), "rank": state.process_index, "batch": signature}
    with state.split_between_processes(pending) as mine, ThreadPoolExecutor(1, "mp4-writer") as writer:
        saving: Future | None = None
        for number, item in enumerate(mine, 1):
            result = _generate(pipe, job, item)
            if saving is not None:
                saving.result()  # one video is written while the next is generated; a failed write stops here
            saving = writer.submit(_save, job, item, result, shard, extra)
            print(f"[rank {state.process_index}] {number}/{len(mine)} {item.video} (seed {item.seed})", flush=True)
        if saving is not None:
            saving.result()
    state.wait_for_everyone()
    manifest = _write_union(job.out) if state.is_main_process else job.out / MANIFEST
    state.print(f"{len(items)} videos in {job.out}: {len(items) - len(pending)} already made, "
                f"{len(pending)} made now by {state.num_processes} process(es); manifest {manifest}")
    return BatchResult(len(items), len(items) - len(pending), len(mine), manifest)


def _generate(pipe: T2VPipeline | I2VPipeline, job: BatchJob, item: Item) -> GenerationResult:
    if job.task == "t2v":
        return pipe(item.prompt, seed=item.seed, **job.options)
    return pipe(item.image, item.prompt, seed=item.seed, **job.options)


def _save(job: BatchJob, item: Item, result: GenerationResult, shard: Path, extra: dict[str, Any]) -> None:
    """Write one item's MP4 (atomically), then append its manifest line (on the writer thread)."""
    start = time.perf_counter()
    write_mp4(result.frames, job.out / item.video, job.playback_fps or result.settings["fps"])
    timings = {**result.timings, "write": time.perf_counter() - start}
    _append(shard, {"video": item.video, "index": item.index, "prompt": item.prompt,
                    "image": None if item.image is None else str(item.image), "sample": item.sample,
                    "seed": item.seed, "settings": result.settings, "timings": timings, **extra,
                    "created": time.time()})
