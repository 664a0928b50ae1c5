from __future__ import annotations

import pytest

from fedcloud_core.bdii import dn

pytestmark = pytest.mark.unit


def test_split_honours_escapes_and_urls() -> None:
    d = r"GLUE2ServiceID=https://k.example:5000/v3_a\,b,GLUE2GroupID=resource, o=glue"
    assert dn.split_dn(d) == [
        r"GLUE2ServiceID=https://k.example:5000/v3_a\,b",
        "GLUE2GroupID=resource",
        "o=glue",
    ]
    assert dn.split_rdn(dn.split_dn(d)[0]) == [("GLUE2ServiceID", "https://k.example:5000/v3_a,b")]


def test_normalize_case_rules() -> None:
    assert dn.normalize("GLUE2GroupID=resource,O=Glue") == dn.normalize(
        "glue2groupid=resource,o=glue"
    )
    # GLUE2 IDs are caseExactMatch in the schema: different entries
    assert dn.normalize("GLUE2ShareID=A,o=glue") != dn.normalize("GLUE2ShareID=a,o=glue")
    assert dn.normalize(r"a=x\2Cy,o=glue") == dn.normalize(r"a=x\,y,o=glue")


def test_parent_depth_rehome() -> None:
    d = "GLUE2ResourceID=f1,GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue"
    assert dn.depth(d) == 4
    assert dn.parent(d) == "GLUE2ServiceID=s,GLUE2GroupID=resource,o=glue"
    assert dn.rehome(
        d, "GLUE2GroupID=resource,o=glue", "GLUE2GroupID=resource,GLUE2DomainID=S,o=glue"
    ) == ("GLUE2ResourceID=f1,GLUE2ServiceID=s,GLUE2GroupID=resource,GLUE2DomainID=S,o=glue")
    assert dn.rehome("o=glue", "GLUE2GroupID=resource,o=glue", "x=y") is None
    assert dn.is_under(d, "O=GLUE")
    assert not dn.is_under(d, "o=grid")


@pytest.mark.parametrize("bad", ["a=b,,o=glue", "novalue,o=glue", "a=b\\"])
def test_bad_dns(bad: str) -> None:
    with pytest.raises(dn.DnError):
        dn.normalize(bad)


def test_escape_roundtrip() -> None:
    v = '#a,b+c"d\\e '
    assert dn.split_rdn("x=" + dn.escape(v)) == [("x", v)]
