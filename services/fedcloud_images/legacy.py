"""Importers of this service's legacy config files (none yet)."""

from fedcloud_core.legacy import LegacyImporter

IMPORTERS: list[LegacyImporter] = []
