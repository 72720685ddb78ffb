"""Failures a user can act on: a short title and a message that says what happened and what to change."""

from __future__ import annotations

import logging

log = logging.getLogger("hummingbird.studio")


class StudioError(Exception):
    """A failure explained to the user; the app shows ``message`` under ``title``."""

    def __init__(self, message: str, title: str) -> None:
        super().__init__(message)
        self.message = message
        self.title = title


class Stopped(StudioError):
    """The user pressed Stop while the job ran."""

    def __init__(self) -> None:
        super().__init__("Stopped: the job was cancelled.", "Stopped")


def sentence(error: BaseException) -> str:
    """An error's text as a sentence: capitalised, with a final full stop."""
    text = str(error).strip()
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def unexpected(error: Exception) -> StudioError:
    """Log an unforeseen failure with its traceback (server side only) and explain it without internals."""
    log.error("a request failed: %s", type(error).__name__, exc_info=error)
    return StudioError(f"Something went wrong on the server ({type(error).__name__}). The app is still running: "
                       "try again, or try other settings.", "Unexpected error")
