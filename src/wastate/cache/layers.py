"""The mapping cache of one store: its layers (near cache, the backend behind its breaker,
single flight, keys, TTL), fills and invalidations, and the listener that applies other
processes' invalidations. `wastate.cache.mappings` builds the per-unit-of-work decorator on it.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from wastate.cache.base import Cache, Subscription, read_announcement
from wastate.cache.breaker import GuardedCache
from wastate.cache.keys import MappingKeys, TenantKeys
from wastate.cache.near import NearCache
from wastate.cache.registry import open_cache
from wastate.cache.singleflight import SingleFlight
from wastate.domain.clock import Monotonic
from wastate.domain.mappings import ConversationMapping, MappingStatus

if TYPE_CHECKING:
    from wastate.settings import Settings

__all__ = ["TOMBSTONE_SECONDS", "ActivityRecorder", "CacheReach", "MappingCache"]

log = logging.getLogger(__name__)

TOMBSTONE_SECONDS = 5.0
"""How long an invalidated key refuses read fills (longer than any database read takes)."""

_ACTIVE = MappingStatus.ACTIVE
_JITTER = 0.1  # TTLs are shortened by up to 10 %, so entries filled together expire apart


@dataclass(frozen=True, slots=True)
class CacheReach:
    """Whom a store's cache changes reach: what `wastate serve --workers N` must know."""

    caching: bool
    """A backend caches at all (not `none://`)."""
    shared: bool
    """Other processes read the same backend (Redis), so an invalidation reaches them."""
    near_cache: bool
    """An in-process near cache sits in front of the backend."""
    announced: bool
    """Invalidations are announced to other processes' near caches (pub/sub)."""


class ActivityRecorder(Protocol):
    """What the decorator needs of the activity writer (`wastate.activity`)."""

    def record(self, mapping: ConversationMapping) -> None:
        """Note that `mapping` was used now."""
        ...

    def take(self, tenant_id: str) -> list[tuple[str, datetime]]:
        """Remove and return the tenant's pending refreshes as (wa_id, time) pairs."""
        ...


class MappingCache:
    """The mapping cache layers of one store; builds a `CachedMappingRepository` per unit of
    work. `monotonic` times the near cache, the breaker's probes and an in-process backend built
    by `from_settings` (tests inject a fake; see `wastate.connect`)."""

    def __init__(
        self,
        backend: Cache,
        *,
        activity: ActivityRecorder,
        prefix: str = "wastate",
        ttl_seconds: float = 3600,
        near_cache: bool = True,
        near_cache_ttl_seconds: float = 5.0,
        near_cache_size: int = 100_000,
        retry_seconds: float = 1.0,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self.backend = backend
        self.enabled = backend.enabled
        self.keys = MappingKeys(prefix)
        self.activity = activity
        self.ttl_seconds = ttl_seconds
        # Tags this store's announcements: its own come back over pub/sub after it has already
        # applied them (and maybe refilled since), so it ignores them.
        self.origin = uuid.uuid4().hex
        self.remote = GuardedCache(
            backend,
            channel=self.keys.channel if backend.shared else None,
            origin=self.origin,
            namespace_pattern=self.keys.namespace_pattern,
            tombstone_seconds=TOMBSTONE_SECONDS,
            retry_seconds=retry_seconds,
            monotonic=monotonic,
        )
        self.near: NearCache | None = None
        if near_cache and backend.enabled and near_cache_size > 0:
            self.near = NearCache(
                ttl_seconds=near_cache_ttl_seconds, size=near_cache_size, monotonic=monotonic
            )
        self.flight: SingleFlight[ConversationMapping | None] = SingleFlight()
        # get_or_create misses fly apart from reads: a read's None is no answer for them.
        self.create_flight: SingleFlight[ConversationMapping] = SingleFlight()
        self.subscription: Subscription | None = None
        if self.near is not None and backend.shared:
            self.subscription = backend.subscribe(
                self.keys.channel, self._on_invalidation, self.near.clear
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        activity: ActivityRecorder,
        monotonic: Monotonic = time.monotonic,
    ) -> MappingCache:
        """The cache layers `settings` describe (`cache_url`, TTLs, near cache, prefix)."""
        return cls(
            open_cache(settings.cache_url, settings, monotonic=monotonic),
            activity=activity,
            prefix=settings.cache_prefix,
            ttl_seconds=settings.mapping_ttl_seconds,
            near_cache=settings.near_cache,
            near_cache_ttl_seconds=settings.near_cache_ttl_seconds,
            near_cache_size=settings.near_cache_size,
            monotonic=monotonic,
        )

    def parse(self, raw: bytes) -> ConversationMapping | None:
        """A cached value as a mapping; None for a tombstone or an unreadable value."""
        if not raw:
            return None
        try:
            return ConversationMapping.model_validate_json(raw)
        except ValidationError:  # e.g. written by another version: a miss, refilled later
            log.debug("unreadable cache entry ignored", exc_info=True)
            return None

    def store(self, mapping: ConversationMapping, keys: TenantKeys, generation: int) -> None:
        """Cache `mapping` both ways (forward only while active): L1 and L2."""
        items = [(keys.reverse(mapping.conversation_id), mapping)]
        if mapping.status is _ACTIVE:
            items.append((keys.forward(mapping.wa_id), mapping))
        if self.near is not None:
            self.near.put(items, generation)
        raw = mapping.model_dump_json().encode()
        ttl = self.ttl_seconds * (1.0 - _JITTER * random.random())
        self.remote.fill([(key, raw) for key, _ in items], ttl)

    def settle(self) -> None:
        """Return once the L2 fills sent so far are applied (Redis sends them without waiting
        for the replies); for tests and tools that read the backend directly."""
        self.remote.settle()

    def invalidate(self, keys: Sequence[str]) -> None:
        """Forget `keys` here (L1), in L2 and in every other process's L1."""
        if self.near is not None:
            self.near.discard(keys)
        if self.enabled:
            self.remote.invalidate(keys)

    def _on_invalidation(self, message: bytes) -> None:
        origin, keys = read_announcement(message)
        if self.near is not None and origin != self.origin:
            self.near.discard(keys)

    def reach(self) -> CacheReach:
        """Whom this cache's changes reach (see `CacheReach`)."""
        return CacheReach(
            caching=self.backend.enabled,
            shared=self.backend.shared,
            near_cache=self.near is not None,
            announced=self.subscription is not None,
        )

    def close(self) -> None:
        """Stop the listener and the probe, close the backend."""
        if self.subscription is not None:
            self.subscription.close()
        self.remote.close()
