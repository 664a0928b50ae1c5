"""X.509 names written as text, matched against a certificate's own name without ambiguity.

Grid tools write DNs in OpenSSL's one-line form (``/DC=org/O=Example/CN=host``), which has
no escaping: a value may contain ``/``, so a certificate whose CN is ``a/CN=b`` prints
exactly like one with the two CNs ``a`` and ``b``. Comparing printed forms would accept
either for the other. Here a DN string is read with one fixed rule into a sequence of RDNs
of (OID, value), a string that rule cannot read for certain is refused, and the result is
compared with the RDN sequence of the certificate (as DER-decoded by ``cryptography``),
never with a printed form of it.

The rule for ``/K=V`` strings: a ``/`` (or ``+``, for a multi-valued RDN) starts a new
attribute only when a known attribute name or a dotted OID and ``=`` follow; a ``/`` followed
by text without ``=`` belongs to the value (``CN=ldap/host.example.org``). A ``/`` followed by
an unknown ``name=`` is refused: it could be either. Other strings are read as RFC 4514
(``CN=host,O=Example,C=EU``: most specific first, with ``\\`` escapes), which is unambiguous.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

# attribute names as OpenSSL and the grid write them (upper-cased for lookup)
_KEYS: dict[str, ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "USERID": NameOID.USER_ID,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "E": NameOID.EMAIL_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "TITLE": NameOID.TITLE,
    "DNQUALIFIER": NameOID.DN_QUALIFIER,
    "PSEUDONYM": NameOID.PSEUDONYM,
    "POSTALCODE": NameOID.POSTAL_CODE,
    "BUSINESSCATEGORY": NameOID.BUSINESS_CATEGORY,
    "JURISDICTIONC": NameOID.JURISDICTION_COUNTRY_NAME,
    "JURISDICTIONST": NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME,
    "JURISDICTIONL": NameOID.JURISDICTION_LOCALITY_NAME,
    "ORGANIZATIONIDENTIFIER": NameOID.ORGANIZATION_IDENTIFIER,
}
_OID = re.compile(r"^\d+(\.\d+)+$")
_ATTR_START = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)=")

Attr = tuple[str, str]  # (dotted OID, value)
RDNs = tuple[tuple[Attr, ...], ...]  # each RDN's attributes sorted


class AmbiguousDN(ValueError):
    """A DN string that cannot be read as one name for certain; the message says where."""


def _oid(key: str) -> ObjectIdentifier | None:
    if _OID.match(key):
        return ObjectIdentifier(key)
    return _KEYS.get(key.upper())


def _split(text: str, sep: str, where: str) -> list[str]:
    """Split ``text`` on ``sep`` where a known attribute starts; ``sep`` elsewhere is value text."""
    parts: list[str] = []
    for piece in text.split(sep):
        m = _ATTR_START.match(piece)
        if m and _oid(m.group(1)) is not None:
            parts.append(piece)
        elif not parts:
            raise AmbiguousDN(f"{where}: {piece!r} is not an attribute (KEY=value)")
        elif m and sep == "/":
            raise AmbiguousDN(
                f"{where}: cannot tell whether '/{piece}' starts an attribute ({m.group(1)!r} is "
                "not a known attribute name) or continues the value before it"
            )
        else:
            parts[-1] += sep + piece
    return parts


def parse_dn(text: str) -> RDNs:
    """The RDN sequence (most significant first) named by ``text``; AmbiguousDN if unsure."""
    where = f"DN {text!r}"
    s = text.strip()
    if not s:
        raise AmbiguousDN("empty DN")
    if not s.startswith("/"):
        try:
            return rdns_of(x509.Name.from_rfc4514_string(s))
        except ValueError as exc:
            raise AmbiguousDN(f"{where}: neither /K=V nor RFC 4514 form ({exc})") from None
    out = []
    for rdn in _split(s[1:], "/", where):
        attrs = []
        for attr in _split(rdn, "+", where):
            key, _, value = attr.partition("=")
            oid = _oid(key)
            assert oid is not None  # _split keeps only known keys
            attrs.append((oid.dotted_string, value.strip()))
        out.append(tuple(sorted(attrs)))
    return tuple(out)


def _value(v: str | bytes) -> str:
    return v if isinstance(v, str) else v.decode("utf-8", "replace")


def rdns_of(name: x509.Name) -> RDNs:
    """A certificate name's RDN sequence (as encoded: most significant first)."""
    return tuple(
        tuple(sorted((a.oid.dotted_string, _value(a.value).strip()) for a in rdn))
        for rdn in name.rdns
    )


def same_name(text: str, name: x509.Name) -> bool:
    """Does the DN string ``text`` name exactly ``name``? (AmbiguousDN if ``text`` is unsure.)"""
    return parse_dn(text) == rdns_of(name)


def slash_form_is_faithful(name: x509.Name) -> bool:
    """Whether OpenSSL's ``/K=V`` form of ``name`` reads back as ``name`` (false when a value
    contains ``/KEY=`` or ``+KEY=``: such a name cannot be named in that form)."""
    from .smime import openssl_dn

    try:
        return parse_dn(openssl_dn(name)) == rdns_of(name)
    except AmbiguousDN:
        return False
