"""accounting extract: OpenStack usage -> APEL records -> dirq outgoing queue.

The data flows through three packages: :mod:`.extract` reads OpenStack (servers,
flavors, images, instance actions, floating IPs, volumes) into plain usage facts,
:mod:`.record` turns them into typed APEL records and validates them against
APEL's parsing rules, and :mod:`.messenger` renders, splits and queues messages.
:mod:`.run` drives one run with per-project checkpoints (:mod:`.checkpoint`).
"""
