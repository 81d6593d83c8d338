"""Confinement of file-based sources to ``settings.DATASOURCE_FILE_ROOT``.

Paths are written relative to the root. With ``DATASOURCE_FILE_ROOT_PER_ORGANIZATION`` each
organization's sources are confined further, to the root's folder named after the organization's
slug (``ConnectionConfig.file_folder``): ``demo/sample.db`` for ``demo``, and another organization's
file is "not found", like a missing one.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from django.conf import settings

from .base import ConnectorError

NOT_FOUND = "File not found under the file root."


def not_found(folder: str) -> str:
    return f"File not found in your organization's folder '{folder}/' of the file root." if folder else NOT_FOUND
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


def confined(relative_path: str, folder: str = "") -> tuple[Path, Path] | None:
    """(``relative_path`` resolved, following symlinks; the folder it must stay in: the root, or the
    organization's ``folder`` of it), or None when either does not exist."""
    path = check_relative_path(relative_path)
    try:
        root = file_root().resolve(strict=True)
        allowed = (root / folder).resolve(strict=True) if folder else root
        return (root / path).resolve(strict=True), allowed
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None


def resolve_under_root(relative_path: str, folder: str = "") -> Path:
    """Resolve ``relative_path`` to an existing file inside the file root (inside ``folder`` of it,
    when given).

    A missing file, another organization's file and a symlink leading out of the root fail the same
    way, so a test cannot be used to probe for files elsewhere on the server.
    """
    found = confined(relative_path, folder)
    if found is None:
        raise ConnectorError("database", not_found(folder))
    resolved, allowed = found
    if not resolved.is_relative_to(allowed) or resolved == allowed or not resolved.is_file():
        raise ConnectorError("database", not_found(folder))
    return resolved
