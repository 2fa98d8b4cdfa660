"""Cache keys: tenant and version in every key, no collisions, the hash tag is the tenant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wastate.cache.keys import KEY_VERSION, MappingKeys, escape, hash_tag, unescape

any_text = st.text(min_size=0, max_size=40)
kinds = st.sampled_from(["wa", "conv"])


def build(keys: MappingKeys, tenant: str, kind: str, ident: str) -> str:
    return keys.forward(tenant, ident) if kind == "wa" else keys.reverse(tenant, ident)


def test_a_forward_key_has_the_documented_shape() -> None:
    """A normalised wa_id needs no escaping and lands in the documented layout."""
    keys = MappingKeys("wastate")
    assert keys.forward("tenant-a", "+919876543210") == "wastate:v1:{tenant-a}:map:wa:+919876543210"
    assert keys.reverse("tenant-a", "abc") == "wastate:v1:{tenant-a}:map:conv:abc"


@given(any_text)
def test_escaping_round_trips(text: str) -> None:
    """unescape(escape(x)) == x, so escaping loses nothing."""
    assert unescape(escape(text)) == text


@given(any_text)
def test_escaped_parts_hold_no_separator_brace_or_glob_character(text: str) -> None:
    """No input can smuggle a `:`, a brace or a SCAN glob character into a key part."""
    assert not set(escape(text)) & set(":{}*?[]\\ \n")


@given(st.text(min_size=1, max_size=10), any_text, kinds, any_text, kinds, any_text, any_text)
def test_different_inputs_never_build_the_same_key(
    prefix: str, tenant_a: str, kind_a: str, id_a: str, kind_b: str, id_b: str, tenant_b: str
) -> None:
    """Two different (tenant, kind, id) triples never share a key."""
    keys = MappingKeys(prefix)
    same = (tenant_a, kind_a, id_a) == (tenant_b, kind_b, id_b)
    assert (build(keys, tenant_a, kind_a, id_a) == build(keys, tenant_b, kind_b, id_b)) == same


@given(st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=40), kinds, any_text)
def test_the_hash_tag_is_exactly_the_tenant(
    prefix: str, tenant: str, kind: str, ident: str
) -> None:
    """Redis Cluster hashes the tenant alone, whatever the prefix, tenant or id contain."""
    key = build(MappingKeys(prefix), tenant, kind, ident)
    tag = hash_tag(key)
    assert tag is not None
    assert unescape(tag) == tenant


def test_keys_carry_the_version() -> None:
    """A change of the cached value's shape can move every key by bumping the version."""
    assert f":{KEY_VERSION}:" in MappingKeys("p").forward("t", "+15550001111")


def test_the_namespace_pattern_matches_mapping_keys_only_of_its_prefix() -> None:
    """`clear_namespace` after lost invalidations wipes this prefix's mapping keys, no others."""
    from fnmatch import fnmatchcase

    mine, other = MappingKeys("app"), MappingKeys("app2")
    assert fnmatchcase(mine.forward("t", "+15550001111"), mine.namespace_pattern)
    assert fnmatchcase(mine.reverse("t:x", "c{1}"), mine.namespace_pattern)
    assert not fnmatchcase(other.forward("t", "+15550001111"), mine.namespace_pattern)
