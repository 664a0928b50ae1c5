"""Run cloud-info-provider in-process (inside ITS OWN venv) and time collect and render.

Used by bench_infosys_collect.py as
``<cip venv>/bin/python cip_runner.py RESULT.json -- <cloud-info-provider-service arguments>``.
Not a benchmark by itself (the file name does not start with ``bench_``).

What it measures, the same way as for our tool:
- collect = ``OpenStackProvider(opts).fetch()``, render = ``GLUE21Json().format(opts, glue)``,
  both with ``time.perf_counter`` in this process (interpreter start-up excluded for both);
- API calls = every HTTP request sent through ``requests.Session.send`` (keystoneauth's
  token requests included, as in our count).

One change to the tool, stated in the result: ``find_in_gocdb`` (an HTTPS query to
goc.egi.eu that only adds the GOCDB service id to OtherInfo) is replaced by "not found",
because that host is not reachable from the bench machine and the call would abort the
run; our tool does not query GOCDB at all, so both sides do only OpenStack calls.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def _write(path: str, data: dict) -> None:  # type: ignore[type-arg]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def main() -> int:
    out_path, sep, *cip_args = sys.argv[1:]
    assert sep == "--", "usage: cip_runner.py RESULT.json -- ARGS"
    import requests.sessions

    calls = {"n": 0}
    orig_send = requests.sessions.Session.send

    def counting_send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return orig_send(self, request, **kwargs)

    requests.sessions.Session.send = counting_send  # type: ignore[method-assign]

    from cloud_info_provider import core
    from cloud_info_provider.formatters.glue import GLUE21Json
    from cloud_info_provider.providers import utils

    utils.find_in_gocdb = lambda *a, **k: {}  # unreachable external service, see docstring

    from cloud_info_provider.providers.openstack import OpenStackProvider

    shares = {"n": 0}
    orig_rescope = OpenStackProvider.rescope_project

    def counting_rescope(self, auth=None, os_cloud=None):  # type: ignore[no-untyped-def]
        shares["n"] += 1
        return orig_rescope(self, auth, os_cloud)

    OpenStackProvider.rescope_project = counting_rescope  # type: ignore[method-assign]

    # progress for a run stopped by the bench's timeout: calls made so far (a lower bound)
    stop = threading.Event()

    def progress() -> None:
        while not stop.wait(2.0):
            _write(out_path, {"partial": True, "calls": calls["n"], "shares_done": shares["n"]})

    ticker = threading.Thread(target=progress, daemon=True)
    ticker.start()

    providers = core.get_providers()
    sys.argv = ["cloud-info-provider-service", *cip_args]
    opts = core.get_parser(providers, core.get_formatters(), core.get_publishers()).parse_args()
    provider = providers[opts.middleware](opts)
    t0 = time.perf_counter()
    glue = provider.fetch()
    t1 = time.perf_counter()
    text = GLUE21Json().format(opts, glue)
    t2 = time.perf_counter()
    stop.set()
    ticker.join()
    doc = json.loads(text)
    result = {
        "collect": t1 - t0,
        "render": t2 - t1,
        "calls": calls["n"],
        "objects": sum(len(v) for v in doc.values()),
        "images": len(doc.get("CloudComputingImage", [])),
        "flavors": len(doc.get("CloudComputingInstanceType", [])),
        "shares": len(doc.get("Share", [])),
        "bytes": len(text),
        "health": [e.get("HealthState") for e in doc.get("CloudComputingEndpoint", [])],
    }
    _write(out_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
