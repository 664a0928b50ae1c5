"""A real, local OpenStack control plane for integration tests and the demo.

Keystone, Glance, Placement, Nova (fake virt driver), Neutron (API only, with a
bind-everything ML2 driver) and Cinder (fake volume driver), on MariaDB and
RabbitMQ, all bound to 127.0.0.1. Driven by ``scripts/dev/testbed``.

Module map (data flows top to bottom)::

    layout      where everything lives (state dir, ports, credentials)
    install     apt packages + the OpenStack venv (pinned by constraints.txt)
    configs     renders every service's config files from Python dicts
    procs       start daemons detached, track them by PID file, stop them by PID
    stack       up/stop orchestration: infra, DB sync, services, readiness
    health      HTTP probes and service heartbeat checks
    clients     one keystoneauth1 session -> nova/glance/keystone/neutron/cinder
    seed        the deterministic demo site + seed.json manifest
    scale       bulk images/flavors/servers/projects for benchmarks
    qcow2       writes a tiny but valid qcow2 image

Only the standard library is imported at module level: the CLI runs before the
venv holds any OpenStack library.
"""
