"""images sync: signed image lists (HEPiX, OCI registry) -> verified cache -> Glance."""
