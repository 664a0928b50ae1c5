"""The OVA appliance build (see docs/ova.md). Not part of the runtime distribution."""
