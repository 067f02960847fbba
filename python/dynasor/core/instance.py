"""Which Dynasor server answers at a URL: its launch id, served at ``INSTANCE_ROUTE``.

A readiness check that only asks ``/health`` can be answered by another server on a taken port.
Whoever starts a server passes a launch id (``DYNASOR_INSTANCE_ID``) and checks it here; the
launcher does the same with its own. Standard library only, so every layer can use it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

INSTANCE_ROUTE = "/dynasor/instance"
ENV_INSTANCE_ID = "DYNASOR_INSTANCE_ID"  # the launch id a starter hands a Dynasor server


def instance_of(url: str, timeout: float = 5.0) -> str | None:
    """The launch id of the Dynasor server answering at ``url``; None if none answers or it is
    not a Dynasor server."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + INSTANCE_ROUTE, timeout=timeout) as response:
            body = json.loads(response.read().decode())
    except (OSError, ValueError):
        return None
    value = body.get("instance_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None
