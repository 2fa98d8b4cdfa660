"""Cache backends by URL scheme, through the entry point group `wastate.cache_backends`.

wastate registers `memory`, `none`, `redis` and `rediss` itself (pyproject.toml); a third-party
package adds a scheme by declaring an entry point `myscheme = "mypkg.cache:MyCache"` whose class
subclasses `wastate.cache.Cache` and is called as `MyCache(url, settings)` (plus `monotonic=`, the
store's clock, when the class sets `in_process_clock = True` because it expires entries itself).
"""

from __future__ import annotations

import importlib
import time
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from wastate.cache.base import Cache
from wastate.domain.clock import Monotonic
from wastate.errors import ConfigurationError

if TYPE_CHECKING:
    from wastate.settings import Settings

__all__ = ["ENTRY_POINT_GROUP", "backend_class", "open_cache"]

ENTRY_POINT_GROUP = "wastate.cache_backends"

# Used when the package metadata is missing (running from a source tree without installing).
_BUILTIN = {
    "memory": "wastate.cache.memory:MemoryCache",
    "none": "wastate.cache.base:NullCache",
    "redis": "wastate.cache.redis:RedisCache",
    "rediss": "wastate.cache.redis:RedisCache",
    "unix": "wastate.cache.redis:RedisCache",
}


def backend_class(scheme: str) -> type[Cache]:
    """The backend class registered for `scheme`, or `ConfigurationError`."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    if found:
        loaded = next(iter(found)).load()
    elif scheme in _BUILTIN:
        module, _, name = _BUILTIN[scheme].partition(":")
        loaded = getattr(importlib.import_module(module), name)
    else:
        known = sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(_BUILTIN))
        raise ConfigurationError(
            f"WASTATE_CACHE_URL: no cache backend for scheme {scheme!r} (known: {', '.join(known)})"
        )
    if not (isinstance(loaded, type) and issubclass(loaded, Cache)):
        raise ConfigurationError(
            f"WASTATE_CACHE_URL: the backend for {scheme!r} is not a wastate.cache.Cache"
        )
    return loaded


def open_cache(url: str, settings: Settings, *, monotonic: Monotonic = time.monotonic) -> Cache:
    """The cache backend for `url` (`memory://`, `none://`, `redis://…`, or a plug-in's);
    a backend that times entries itself (`Cache.in_process_clock`) is given `monotonic`."""
    scheme = url.partition("://")[0].lower()
    cls = backend_class(scheme)
    if cls.in_process_clock:
        return cls(url, settings, monotonic=monotonic)  # type: ignore[call-arg]
    return cls(url, settings)
