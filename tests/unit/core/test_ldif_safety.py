"""Issue 18 defect 2: untrusted values (image names, IDs) never break out of their LDIF line."""

from __future__ import annotations

import random
import re

import pytest

from fedcloud_core import ldif
from fedcloud_core.bdii import dn as dnlib

pytestmark = pytest.mark.unit

# every character some reader takes as a line break, plus the LDIF/DN syntax characters
BREAKERS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
NASTY = BREAKERS + "\x00\x01\x1f\x7f\t :<#=,+;\\\"'>/dn-é€😀\ud800 aA0"
IMAGE_DN = "GLUE2ApplicationEnvironmentID=i1,GLUE2GroupID=resource,o=glue"
PLAIN_LINE = re.compile(r"^[\x20-\x7e]*$")


def _injected_name(sep: str) -> str:
    """An image name that, split at ``sep``, is a blank line and a second entry."""
    evil = "GLUE2ApplicationEnvironmentID=evil,GLUE2GroupID=resource,o=glue"
    return f"Ubuntu{sep}{sep}dn: {evil}{sep}objectClass: GLUE2Entity{sep}GLUE2EntityName: evil"


@pytest.mark.parametrize("sep", list(BREAKERS), ids=[f"U+{ord(c):04X}" for c in BREAKERS])
def test_line_breaking_character_in_a_name_is_base64_and_injects_nothing(sep: str) -> None:
    name = _injected_name(sep)
    e = ldif.Entry(IMAGE_DN).add("objectClass", "GLUE2Entity").add("GLUE2EntityName", name)
    text = ldif.render([e])
    assert sep == "\n" or sep not in text
    assert all(PLAIN_LINE.match(line) for line in text.split("\n"))
    assert "GLUE2EntityName:: " in text
    assert [(x.dn, x.attrs) for x in ldif.parse(text)] == [(e.dn, e.attrs)]


@pytest.mark.parametrize(
    "value", [" lead", "trail ", "nl\n", "\ttab", "del\x7f", ":c", "<l", "a\x00b"]
)
def test_values_outside_printable_ascii_or_with_edge_spaces_are_base64(value: str) -> None:
    text = ldif.render([ldif.Entry("o=glue").add("o", value)])
    assert "o:: " in text
    (back,) = ldif.parse(text)
    assert back.attrs == {"o": [value]}


def test_plain_printable_values_stay_plain() -> None:
    text = ldif.render([ldif.Entry("o=glue").add("o", "EGI Ubuntu 22.04 (x86_64) a=b, c")])
    assert "o: EGI Ubuntu 22.04 (x86_64) a=b, c\n" in text


def test_parse_splits_on_lf_and_crlf_only() -> None:
    # a third-party file may carry a form feed raw (RFC 2849 SAFE-CHAR): it stays in the value
    text = "dn: o=glue\r\no: a\x0cb\x1cc\u2028d\r\nobjectClass: organization\n\n"
    (e,) = ldif.parse(text)
    assert e.attrs == {"o": ["a\x0cb\x1cc\u2028d"], "objectClass": ["organization"]}


def test_parse_refuses_raw_cr_or_nul_in_a_plain_value() -> None:
    with pytest.raises(ldif.LdifError, match="line 2"):
        ldif.parse("dn: o=glue\no: a\rb\n")
    with pytest.raises(ldif.LdifError, match="line 2"):
        ldif.parse("dn: o=glue\no: a\x00b\n")


def test_lone_surrogate_does_not_abort_rendering() -> None:
    e = ldif.Entry("o=glue").add("o", "bad\ud800name")
    (back,) = ldif.parse(ldif.render([e]))
    assert back.attrs == {"o": ["bad\ufffdname"]}


@pytest.mark.parametrize("ch", list(BREAKERS + "\x00\x7f"))
def test_dn_escape_writes_control_characters_as_hex_pairs(ch: str) -> None:
    escaped = dnlib.escape(f"id{ch}x")
    assert ch not in escaped
    assert PLAIN_LINE.match(escaped.encode("ascii", "ignore").decode()) is not None
    assert dnlib.unescape(escaped) == f"id{ch}x"
    dn = f"GLUE2ResourceID={escaped},o=glue"
    assert dnlib.split_rdn(dnlib.split_dn(dn)[0]) == [("GLUE2ResourceID", f"id{ch}x")]
    assert dnlib.normalize(dn) == dnlib.normalize(
        f"GLUE2ResourceID={dnlib.escape(f'id{ch}x')},o=glue"
    )


def _random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(NASTY) for _ in range(rng.randint(0, n)))


def test_fuzz_render_parse_round_trip_gives_exactly_the_same_entries() -> None:
    rng = random.Random(18)  # fixed seed, bounded count: reproducible
    for _ in range(300):
        entries = []
        for k in range(rng.randint(1, 4)):
            rid = _random_text(rng, 12) or f"r{k}"
            e = ldif.Entry(f"GLUE2ApplicationEnvironmentID={dnlib.escape(rid)},o=glue")
            e.add("objectClass", "GLUE2Entity")
            e.add("GLUE2ApplicationEnvironmentID", rid)
            e.add("GLUE2EntityName", *[_random_text(rng, 40) for _ in range(rng.randint(1, 3))])
            e.add("GLUE2EntityOtherInfo", _random_text(rng, 120))
            entries.append(e)
        # names with a lone surrogate are stored with U+FFFD (they cannot be UTF-8)
        want = [(e.dn.replace("\ud800", "\ufffd"), e.attrs) for e in entries]
        text = ldif.render(entries)
        assert all(PLAIN_LINE.match(line) and len(line) <= ldif.WRAP for line in text.split("\n"))
        got = ldif.parse(text)
        assert len(got) == len(entries)  # no extra DN
        assert [(g.dn, g.attrs) for g in got] == want
        for g in got:
            (pairs,) = [dnlib.split_rdn(dnlib.split_dn(g.dn)[0])]
            assert pairs == [
                ("GLUE2ApplicationEnvironmentID", g.attrs["GLUE2ApplicationEnvironmentID"][0])
            ]
