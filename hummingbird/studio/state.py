"""What the event handlers share: the models, the UI limits, output folders, upload rules and stop requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from hummingbird.studio.limits import Limits
from hummingbird.studio.models import ModelStore
from hummingbird.studio.outputs import OutputFolders
from hummingbird.studio.stops import StopRequests
from hummingbird.studio.uploads import UploadPolicy


@dataclass
class Studio:
    """The app's shared state."""

    models: ModelStore
    limits: Limits
    outputs: OutputFolders
    uploads: UploadPolicy
    stops: StopRequests = field(default_factory=StopRequests)


_current: Studio | None = None  # GPU functions look models up here (ZeroGPU hands them plain values only)


def install(studio: Studio) -> Studio:
    """Make ``studio`` the app's shared state."""
    global _current
    _current = studio
    return studio


def current() -> Studio:
    """The app's shared state (set up by :func:`install`)."""
    if _current is None:
        raise RuntimeError("the studio has not been set up: call install() first")
    return _current
