"""The testbed's own tests: the seeded local OpenStack answers as the appliance expects
(one test per API it uses). They test the testbed, not the appliance; marker integration."""
