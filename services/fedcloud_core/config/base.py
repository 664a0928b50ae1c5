"""Base class of every config section: strict (unknown keys are errors), secrets from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationInfo, model_validator

from ..errors import ConfigError


class Section(BaseModel):
    """A config section. Unknown keys are rejected.

    Every ``SecretStr`` field ``x`` may instead be given as ``x_file: <path>``: the
    file's content (stripped) becomes the value, so secrets stay out of the YAML.

    Validated with ``context={"defer_secret_files": True}`` (what the loader does), the file
    is not read: the field holds a :class:`SecretFile` until the loader reads the secret
    files of the sections the running job uses (a job's container may not even see the
    other jobs' secret files).
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        defer = bool(info.context and info.context.get("defer_secret_files"))
        secret_fields = [n for n, f in cls.model_fields.items() if _is_secret(f.annotation)]
        for name in secret_fields:
            key = f"{name}_file"
            if key not in data:
                continue
            data = dict(data)
            path = data.pop(key)
            if data.get(name) not in (None, ""):
                raise ValueError(f"give either '{name}' or '{key}', not both")
            if defer:
                data[name] = SecretFile(str(path))
                continue
            try:
                data[name] = Path(str(path)).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"'{key}': cannot read secret file {path}: {exc.strerror}"
                ) from None
        return data


class SecretFile(SecretStr):
    """A secret given as ``x_file`` whose file has not been read (yet).

    The loader replaces it with the file's content for the sections the running job uses
    (:func:`fedcloud_core.config.loader.resolve_secret_files`); anywhere else, using its
    value is an error naming the file, never a placeholder sent as a password.
    """

    def __init__(self, path: str) -> None:
        super().__init__(f"<secret file {path}>")  # not empty: validators see "given"
        self.path = path

    def get_secret_value(self) -> str:
        raise ConfigError(
            f"the secret file {self.path} was not read: this command does not use it "
            "(run 'fedcloud-appliance config check' with the whole config directory)"
        )


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return SecretStr in getattr(annotation, "__args__", ())
