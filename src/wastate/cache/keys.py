"""Cache keys: version, tenant (in a Redis Cluster hash tag) and escaped ids.

A forward key looks like `wastate:v1:{tenant-a}:map:wa:+919876543210`, a reverse key like
`wastate:v1:{tenant-a}:map:conv:0f6c…`. Every variable part (the prefix, the tenant, the id) is
percent-escaped: any character outside `A-Za-z0-9_.~+@-` becomes `%XX` per UTF-8 byte, `%` itself
included. So an escaped part never holds `:`, `{`, `}` or a glob character, which gives:

- no collisions: a key splits back into its parts at the `:` separators, and escaping is
  injective, so two different (tenant, kind, id) triples never build the same key;
- the hash tag is always exactly the tenant: Redis Cluster hashes the text between the first
  `{` and the next `}`, and neither the prefix nor the tenant can contain a brace. All of a
  tenant's keys live in one slot, so a tenant's multi-key operations stay on one node.

Keys are versioned (`v1`): a change of the cached value's shape bumps it, and old entries age out.
"""

from __future__ import annotations

import re

__all__ = ["KEY_VERSION", "MappingKeys", "TenantKeys", "escape", "hash_tag", "unescape"]

KEY_VERSION = "v1"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.~+@-]")


def _quote(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def escape(part: str) -> str:
    """`part` with every character outside `A-Za-z0-9_.~+@-` percent-escaped (injective)."""
    if _UNSAFE.search(part) is None:  # the common case: normalised ids need no escaping
        return part
    return _UNSAFE.sub(_quote, part)


def unescape(part: str) -> str:
    """The inverse of `escape`."""
    raw = bytearray()
    index = 0
    while index < len(part):
        char = part[index]
        if char == "%":
            raw.append(int(part[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(char.encode())
            index += 1
    return raw.decode("utf-8", "surrogatepass")


def hash_tag(key: str) -> str | None:
    """What Redis Cluster hashes for `key`: the text inside the first `{…}`, if non-empty."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


class TenantKeys:
    """The mapping keys of one tenant: what production builds every key with.

    A unit of work takes one (`MappingKeys.tenant`) when it starts, so a key on the hot path
    costs one concatenation and one `escape` — the tenant part is never rebuilt.
    """

    __slots__ = ("_conv", "_wa", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        """`<prefix>:v1:{<tenant>}:map:`, the start of every key of this tenant."""
        self._wa = f"{prefix}wa:"
        self._conv = f"{prefix}conv:"

    def forward(self, wa_id: str) -> str:
        """The key of the tenant's active mapping of `wa_id` (normalised)."""
        return self._wa + escape(wa_id)

    def reverse(self, conversation_id: str) -> str:
        """The key of the tenant's mapping of `conversation_id`."""
        return self._conv + escape(conversation_id)


class MappingKeys:
    """Builds the mapping keys of one store (one prefix); `tenant` gives the per-tenant builder
    the hot path uses, `forward`/`reverse` go through it."""

    __slots__ = ("_prefix", "_tenants", "channel")

    _MAX_TENANTS = 10_000

    def __init__(self, prefix: str) -> None:
        self._prefix = f"{escape(prefix)}:{KEY_VERSION}:"
        self._tenants: dict[str, TenantKeys] = {}
        self.channel = f"{self._prefix}mapping-invalidations"
        """The pub/sub channel near caches listen on."""

    @property
    def namespace_pattern(self) -> str:
        """A SCAN pattern matching every mapping key of this prefix and version."""
        return f"{self._prefix}{{*}}:map:*"

    def tenant_prefix(self, tenant_id: str) -> str:
        """`<prefix>:v1:{<tenant>}:map:`, the start of every key of `tenant_id`."""
        return f"{self._prefix}{{{escape(tenant_id)}}}:map:"

    def tenant(self, tenant_id: str) -> TenantKeys:
        """The key builder of `tenant_id` — built once per tenant and remembered."""
        found = self._tenants.get(tenant_id)
        if found is None:
            if len(self._tenants) >= self._MAX_TENANTS:
                self._tenants.clear()  # unbounded tenant churn must not grow memory
            found = self._tenants[tenant_id] = TenantKeys(self.tenant_prefix(tenant_id))
        return found

    def forward(self, tenant_id: str, wa_id: str) -> str:
        """The key of a tenant's active mapping of `wa_id` (normalised)."""
        return self.tenant(tenant_id).forward(wa_id)

    def reverse(self, tenant_id: str, conversation_id: str) -> str:
        """The key of a tenant's mapping of `conversation_id`."""
        return self.tenant(tenant_id).reverse(conversation_id)
