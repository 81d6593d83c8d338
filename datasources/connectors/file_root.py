"""Confinement of file-based sources to ``settings.DATASOURCE_FILE_ROOT``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from django.conf import settings

from .base import ConnectorError

NOT_FOUND = "File not found under the file root."
MAX_PATH_LENGTH = 1000


def file_root() -> Path:
    """The configured file root, read at call time."""
    return Path(str(settings.DATASOURCE_FILE_ROOT))


def check_relative_path(relative_path: str) -> PurePosixPath:
    """Reject paths that are not plain relative paths (absolute, ``..``, NUL, backslashes)."""
    if not isinstance(relative_path, str) or not relative_path.strip():
        raise ConnectorError("resolve", "A file path is required.")
    if len(relative_path) > MAX_PATH_LENGTH:
        raise ConnectorError("resolve", "The file path is too long.")
    if "\x00" in relative_path or any(ord(ch) < 32 for ch in relative_path):
        raise ConnectorError("resolve", "The file path contains invalid characters.")
    if "\\" in relative_path:
        raise ConnectorError("resolve", "Use '/' to separate folders in the file path.")
    path = PurePosixPath(relative_path)
    if path.is_absolute() or relative_path.startswith("~"):
        raise ConnectorError("resolve", "The file path must be relative to the file root.")
    if ".." in path.parts:
        raise ConnectorError("resolve", "The file path must not contain '..'.")
    return path


def resolve_under_root(relative_path: str) -> Path:
    """Resolve ``relative_path`` (following symlinks) to an existing file inside the file root.

    A missing file and a symlink leading out of the root fail the same way, so a test cannot
    be used to probe for files elsewhere on the server.
    """
    path = check_relative_path(relative_path)
    try:
        root = file_root().resolve(strict=True)
        resolved = (root / path).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        raise ConnectorError("database", NOT_FOUND) from None
    if not resolved.is_relative_to(root) or resolved == root or not resolved.is_file():
        raise ConnectorError("database", NOT_FOUND)
    return resolved
