"""Record: typed APEL records built from usage facts, sanitised and validated against APEL's rules."""
