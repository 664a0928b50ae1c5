"""Base class of every config section: strict (unknown keys are errors), secrets from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator


class Section(BaseModel):
    """A config section. Unknown keys are rejected.

    Every ``SecretStr`` field ``x`` may instead be given as ``x_file: <path>``: the
    file's content (stripped) becomes the value, so secrets stay out of the YAML.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        secret_fields = [n for n, f in cls.model_fields.items() if _is_secret(f.annotation)]
        for name in secret_fields:
            key = f"{name}_file"
            if key not in data:
                continue
            data = dict(data)
            path = data.pop(key)
            if data.get(name) not in (None, ""):
                raise ValueError(f"give either '{name}' or '{key}', not both")
            try:
                data[name] = Path(str(path)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"'{key}': cannot read secret file {path}: {exc.strerror}"
                ) from None
        return data


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())
