"""A private, single-node Ray on this machine, bound to 127.0.0.1: what `annotate --engine ray` and
`serve --engine ray` start when no cluster address is given.

Ray 2.60 rewrites `_node_ip_address="127.0.0.1"` to the machine's outward address, and its GCS, raylet
and workers then listen on every interface, unless multi-node clustering is off:
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 turns it off (on Linux too), which is what a private, single-node
Ray wants. Ray reads the variable when it is imported, so the constant is set as well; the variable
also reaches the processes Ray starts. Each Serve replica still opens its own inter-deployment gRPC
server on [::] (hard-coded in Ray Serve 2.60, no setting for it). ray is imported inside the function:
the runtime never needs it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .errors import MissingDependencyError

__all__ = ["start_local_ray"]


def start_local_ray(num_cpus: int, *, quiet: bool = False, extra: str = "ray", feature: str = "--engine ray") -> Any:
    """Start Ray with `num_cpus` CPUs on 127.0.0.1 with no dashboard; return the `ray` module.

    `extra` and `feature` name what to install and what needed it, for the error when ray is missing.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
        from ray._private import ray_constants
    except ImportError:
        raise MissingDependencyError("ray", extra, feature) from None

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=not quiet,
        logging_level=logging.WARNING if quiet else logging.INFO,
    )
    return ray
