"""Pure renderers of the site model: GLUE 2.0 LDIF, GLUE 2.1 LDIF, GLUE 2.1 JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ..model import Site
from .glue20 import render_glue20
from .glue21 import render_glue21
from .json21 import render_json

Format = Literal["glue20-ldif", "glue21-ldif", "glue21-json"]

RENDERERS: dict[str, Callable[[Site], str]] = {
    "glue20-ldif": render_glue20,
    "glue21-ldif": render_glue21,
    "glue21-json": render_json,
}

__all__ = ["RENDERERS", "Format", "render_glue20", "render_glue21", "render_json"]
