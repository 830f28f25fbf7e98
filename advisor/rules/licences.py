"""Licence ids: canonical ids from catalog/licenses.yaml, matched case-insensitively with aliases
(SPDX ids, spellings such as "Apache 2.0"), so recommend and check agree on every spelling."""

from __future__ import annotations

import re

from advisor.errors import UsageError, did_you_mean


def _key(text: str) -> str:
    # "Apache License 2.0", "apache_2.0", "APACHE-2.0" -> "apache license 2.0", "apache 2.0", "apache 2.0"
    return " ".join(re.sub(r"[-_\s]+", " ", str(text).strip().lower()).split())


def alias_table(licences: dict) -> dict[str, str]:
    """normalised spelling -> canonical id, from the catalog's licence entries."""
    table: dict[str, str] = {}
    for lic in licences.values():
        for spelling in (lic.id, lic.name, lic.spdx, *lic.aliases):
            if spelling:
                table[_key(spelling)] = lic.id
    return table


def canonical(text: str, licences: dict) -> str | None:
    """The canonical id of a licence spelling, or None when the catalog does not know it."""
    if not licences:
        return _key(text).replace(" ", "-")
    return alias_table(licences).get(_key(text))


def resolve_allow_list(values: list[str] | None, licences: dict) -> list[str] | None:
    """User-given licence ids -> canonical ids; an unknown one is a usage error with suggestions."""
    if values is None:
        return None
    out: list[str] = []
    for v in values:
        cid = canonical(v, licences)
        if cid is None:
            hint = did_you_mean(v, [lic.id for lic in licences.values()]) or \
                "known: " + ", ".join(sorted(licences)[:10])
            raise UsageError(f"unknown licence '{v}'", hint=hint)
        if cid not in out:
            out.append(cid)
    return out


def matches(model_licence: str, allow: list[str], licences: dict) -> bool:
    """Is the model's licence on the (canonical) allow-list, whatever its spelling?"""
    cid = canonical(model_licence, licences) or _key(model_licence).replace(" ", "-")
    return cid in allow
