"""The Redis cache backend: a CACHE_URL of redis:// selects it, one client serves every call, and it
behaves as Django's own (the token cache, rate limits and test slots rely on add/incr/get/delete)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from django.conf import settings as django_settings

from core.cache import RedisCache
from tests.conftest import require_service

URL = "redis://127.0.0.1:6379/13"


def test_a_redis_cache_url_selects_the_reused_client_backend():
    env = {**os.environ, "CACHE_URL": URL, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=django_settings.BASE_DIR)
    assert out.stdout.strip() == "core.cache.RedisCache"


def test_one_client_for_every_call_and_the_same_behaviour():
    require_service("127.0.0.1", 6379, "Redis")
    cache = RedisCache(URL, {"KEY_PREFIX": "core-cache-test"})
    cache.clear()
    client = cache._cache.get_client()
    assert cache._cache.get_client(write=True) is client
    assert cache.add("n", 0) is True and cache.add("n", 5) is False
    counts: list[int] = []

    def bump() -> None:
        for _ in range(50):
            counts.append(cache.incr("n"))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 201)) and cache.get("n") == 200
    cache.set("d", {"a": [1, 2]}, timeout=30)
    assert cache.get("d") == {"a": [1, 2]}
    cache.delete("d")
    assert cache.get("d") is None and cache._cache.get_client() is client
    cache.clear()
