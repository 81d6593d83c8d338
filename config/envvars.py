"""The environment, parsed for config/settings.py and gunicorn.conf.py.

Each reader takes the variable's name and its default. A value it cannot use (not a number, below
its minimum, a log level Python does not know, a URL with an unknown scheme, a malformed CIDR) stops
the start with one line on stderr naming the variable and the bad value, and exit status 1
(``sys.exit``; gunicorn's ``config.boot`` turns it into a worker boot error). URLs are never echoed
(they may hold a password): the line names their scheme or port only. An empty value counts as unset.
"""

from __future__ import annotations

import ipaddress
import math
import os
import sys
import warnings
from typing import NoReturn
from urllib.parse import urlsplit

import environ

TRUE = ("true", "on", "yes", "y", "1")
FALSE = ("false", "off", "no", "n", "0")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def refuse(message: str) -> NoReturn:
    sys.exit(message)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None or not value.strip() else value.strip()


def text(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    return default if value is None else value


def listing(name: str, default: list[str] | None = None) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def boolean(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    refuse(f"{name} must be true or false, not {value!r}.")


def _check_range(name: str, number: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and number < minimum:
        refuse(f"{name} must be at least {minimum:g} (it is {number:g}).")
    if maximum is not None and number > maximum:
        refuse(f"{name} must be at most {maximum:g} (it is {number:g}).")


def integer(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        number = default
    else:
        try:
            number = int(value)
        except ValueError:
            refuse(f"{name} must be a whole number, not {value!r}.")
    _check_range(name, number, minimum, maximum)
    return number


def number(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        result = float(default)
    else:
        try:
            result = float(value)
        except ValueError:
            refuse(f"{name} must be a number, not {value!r}.")
        if not math.isfinite(result):
            refuse(f"{name} must be a finite number, not {value!r}.")
    _check_range(name, result, minimum, maximum)
    return result


def log_level(name: str, default: str) -> str:
    value = (_raw(name) or default).upper()
    if value == "WARN":
        value = "WARNING"
    if value not in LOG_LEVELS:
        refuse(f"{name} must be one of {', '.join(LOG_LEVELS)}, not {value!r}.")
    return value


def networks(name: str) -> list[str]:
    """CIDRs (or single addresses), comma-separated; the entries as given."""
    entries = listing(name)
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            refuse(f"{name}: {entry!r} is not a network (CIDR): {exc}")
    return entries


def _scheme_and_port(name: str, url: str) -> str:
    """The URL's scheme, after checking that its port (if any) is a number. Refuses a URL without one."""
    try:
        parts = urlsplit(url)
        if not parts.scheme.startswith("sqlite"):  # (sqlite://:memory: has no port)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        refuse(f"{name} is not a valid URL: its port is not a number between 0 and 65535.")
    if "://" not in url or not parts.scheme:
        refuse(f"{name} is not a URL (scheme://...): set it as README \"Configuration\" shows.")
    return parts.scheme


def database_url(name: str, default: str) -> dict:
    url = _raw(name) or default
    scheme = _scheme_and_port(name, url)
    known = set(environ.Env.DB_SCHEMES.values())
    with warnings.catch_warnings():  # django-environ warns with the parsed URL, password included
        warnings.simplefilter("ignore")
        try:
            config = environ.Env.db_url_config(url)
        except Exception:  # any parse failure: one line, never the URL
            config = {}
    if config.get("ENGINE") not in known:
        refuse(f"{name} has an unknown database scheme {scheme!r} (postgres://user:password@host:5432/name, "
               f"sqlite:///path).")
    return config


def cache_url(name: str, default: str) -> dict:
    url = _raw(name) or default
    scheme = _scheme_and_port(name, url)
    try:
        return environ.Env.cache_url_config(url)
    except Exception:  # django-environ: ImproperlyConfigured "Invalid cache schema"
        refuse(f"{name} has an unknown cache scheme {scheme!r} (redis://host:6379/1, locmemcache://, "
               f"filecache:///path).")
