"""The mapping between VOs (research communities) and OpenStack projects."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Section


class VOConfig(Section):
    projects: list[str] = Field(
        ...,
        min_length=1,
        description="Keystone project ids (or names) whose usage and shares belong to this VO",
        examples=[["0123456789abcdef0123456789abcdef"]],
    )

    @field_validator("projects")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a project is listed twice")
        return v
