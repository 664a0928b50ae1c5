"""accounting extract: Nova/Keystone/Glance usage -> APEL records -> dirq outgoing queue."""
