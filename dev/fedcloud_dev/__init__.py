"""Development and test tools around the appliance; never installed on a site.

- :mod:`fedcloud_dev.apel_receiver`: the receiving side of APEL (what the central repository
  does with the messages ``ssm send`` delivers), for the tests, the benchmarks and the demo;
- :mod:`fedcloud_dev.demo_env`: the demo's world around the appliance (PKI, broker, signed
  image list, config), driven by ``scripts/dev/demo`` and the bundle's end-to-end tests.

This package lives in ``dev/`` (its own distribution, ``dev/pyproject.toml``), is installed
into the development venv by ``scripts/dev/install`` and is on the tests' ``pythonpath``. The
runtime wheel is built from ``services/`` only, so neither the wheel nor the container images
contain it (``tests/unit/test_project_rooms.py``, ``tests/integration/bundle/test_bundle_rooms.py``).
Runtime code never imports it.
"""
