"""The cache layer: backends (`redis://`, `memory://`, `none://`, plug-ins), keys, the circuit
breaker, single flight, the near cache, and the caching decorator over the mapping repository.
See docs/caching.md for keys, TTLs and staleness bounds."""

from wastate.cache.base import TOMBSTONE, Cache, NullCache, Subscription
from wastate.cache.breaker import GuardedCache
from wastate.cache.keys import KEY_VERSION, MappingKeys, TenantKeys, escape, hash_tag, unescape
from wastate.cache.mappings import CachedMappingRepository, MappingCache
from wastate.cache.near import NearCache
from wastate.cache.registry import ENTRY_POINT_GROUP, backend_class, open_cache
from wastate.cache.singleflight import SingleFlight

__all__ = [
    "ENTRY_POINT_GROUP",
    "KEY_VERSION",
    "TOMBSTONE",
    "Cache",
    "CachedMappingRepository",
    "GuardedCache",
    "MappingCache",
    "MappingKeys",
    "NearCache",
    "NullCache",
    "SingleFlight",
    "Subscription",
    "TenantKeys",
    "backend_class",
    "escape",
    "hash_tag",
    "open_cache",
    "unescape",
]
