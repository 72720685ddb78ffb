"""The copy-paste ``gradio_client`` code that reproduces a result through the named API endpoints."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any


class FileArg(enum.Enum):
    """An endpoint argument that the client snippet reads from a file rather than spells out."""

    UPLOADED = "the file you uploaded"
    PREVIOUS = "the MP4 made by the call above"


ApiCalls = list[tuple[str, dict[str, Any]]]  # (endpoint name, arguments), in order


def client_target(headers: Mapping[str, str] | None) -> str:
    """What ``Client(...)`` connects to: the Space, else the address the request came in on."""
    space = os.environ.get("SPACE_ID")
    if space:
        return space
    if headers is not None and headers.get("host"):
        return f"{headers.get('x-forwarded-proto', 'http')}://{headers['host']}/"
    return "http://127.0.0.1:7860/"


def client_snippet(calls: ApiCalls, target: str, still: bool = False) -> str:
    """Python that reproduces this result through the named API endpoints."""
    files = any(isinstance(value, FileArg) for _, args in calls for value in args.values())
    lines = ["from gradio_client import Client" + (", handle_file" if files else ""), "",
             f"client = Client({target!r})"]
    for api_name, args in calls:
        lines.append("result = client.predict(")
        for name, value in args.items():
            if value is FileArg.UPLOADED:
                lines.append(f"    {name}=handle_file('path/to/your/file'),  # {value.value}")
            elif value is FileArg.PREVIOUS:
                lines.append(f"    {name}=handle_file(result[0]),  # {value.value}")
            else:
                lines.append(f"    {name}={value!r},")
        lines += [f"    api_name='/{api_name}',", ")"]
    if still:
        lines.append("print(result[4])  # the upscaled PNG (the API page lists every output)")
    else:
        lines.append("print(result[0])  # the MP4 (the API page lists every output)")
    return "\n".join(lines)


def upscaled_calls(calls: ApiCalls, model: str, size: str) -> ApiCalls:
    """The calls that reproduce ``calls`` followed by an upscale with ``model`` and ``size``."""
    api_name, args = calls[-1]
    if api_name == "upscale_video":
        return calls[:-1] + [(api_name, {**args, "model": model, "size": size})]
    return calls[:-1] + [(api_name, {**args, "upscale": False}),
                         ("upscale_video", {"media": FileArg.PREVIOUS, "model": model, "size": size})]
