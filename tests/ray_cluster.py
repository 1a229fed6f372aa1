"""A two-node Ray cluster on one machine, for tests of multi-node launches (``NNODES=2 GPUS_PER_NODE=1``).

:func:`two_node_cluster` starts a head node and a worker node (two raylets, ``ray.cluster_utils.Cluster``), each
with one logical GPU, so verl's resource pool for ``trainer.nnodes=2 trainer.n_gpus_per_node=1`` (one placement
group per node) puts one trainer rank on each. It yields the cluster's address: give it to the trainer as
``RAY_ADDRESS``. After the run, :func:`actor_nodes` reads which node every actor ran on from the GCS actor table,
which keeps finished (DEAD) actors; no dashboard is needed.

    with two_node_cluster() as address:
        run = launch(..., RAY_ADDRESS=address)
        nodes = actor_nodes(address)
        assert nodes[TRAINER_WORKER] == set(cluster_node_ids(address))

The nodes see this process's environment, as ``ray start`` sees its shell's, not the trainer's: what the trainer's
workers need from the launcher's environment (``VERL_PLATFORM=cpu`` ...) has to reach them in its runtime_env.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

# Actor class names (the last part of Ray's qualified name) of a verl 0.9.1 v1 run.
TRAINER_WORKER = "WorkerDict"  # the fused actor/rollout/ref worker group (create_colocated_worker_cls)
ROLLOUT_SERVERS = ("HFServer", "vLLMHttpServer", "SGLangHttpServer")  # one per rollout replica (and node)


@contextlib.contextmanager
def two_node_cluster(
    num_cpus: int = 8, num_gpus: int = 1, object_store_mb: int = 256, timeout_s: float = 120
) -> Iterator[str]:
    """Start a head and a worker node (``num_cpus`` logical CPUs and ``num_gpus`` logical GPUs each) and yield the
    GCS address; shut both down on exit. Ray's files go to a private temporary folder (``RAY_TMPDIR`` while the
    cluster lives), so Ray's "current cluster" file in /tmp/ray is not written and a bare ``ray.init()`` elsewhere
    on the machine does not join this cluster. The folder (session logs) is removed unless the block raised."""
    from ray.cluster_utils import Cluster

    # Short on purpose: the raylets' Unix sockets live under it (at most 107 characters).
    temp_dir = tempfile.mkdtemp(prefix="ray2n-", dir="/tmp")
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir
    cluster = None
    node_args = {"num_cpus": num_cpus, "num_gpus": num_gpus, "object_store_memory": object_store_mb * 2**20}
    try:
        # The head still starts a dashboard process (usage stats) when include_dashboard is off: a free port, not
        # 8265, which another Ray instance on the machine may hold (it logs "Failed to bind to 127.0.0.1:8265").
        head_args = {**node_args, "include_dashboard": False, "dashboard_port": _free_port()}
        cluster = Cluster(initialize_head=True, head_node_args=head_args)
        cluster.add_node(**node_args)
        cluster.wait_for_nodes(timeout=timeout_s)
        yield cluster.address
    except BaseException:
        temp_dir = None  # keep the session logs for the failure's report
        raise
    finally:
        try:
            if cluster is not None:
                cluster.shutdown()  # kills exactly this cluster's processes; resets the address file under RAY_TMPDIR
        finally:
            if saved is None:
                os.environ.pop("RAY_TMPDIR", None)
            else:
                os.environ["RAY_TMPDIR"] = saved
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gcs_state(address: str):
    from ray._private.state import GlobalState
    from ray._raylet import GcsClientOptions

    state = GlobalState()
    state._initialize_global_state(
        GcsClientOptions.create(address, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False)
    )
    return state


def cluster_node_ids(address: str) -> list[str]:
    """Hex ids of the cluster's alive nodes."""
    return sorted(node["NodeID"] for node in _gcs_state(address).node_table() if node["Alive"])


def actor_records(address: str) -> list[dict]:
    """Every actor the cluster has started, alive or finished: class (last part of the qualified name), name,
    node id, job id, pid and state. Actors that never started (no node) are left out."""
    records = []
    for actor in _gcs_state(address).actor_table(None).values():
        node = actor["Address"]["NodeID"]
        if not node or set(node) == {"f"}:  # empty / nil id: never placed
            continue
        records.append(
            {
                "class": actor["ActorClassName"].rsplit(".", 1)[-1],
                "name": actor["Name"],
                "node": node,
                "job": actor["JobID"],
                "pid": actor["Pid"],
                "state": actor["State"],
            }
        )
    return records


def actor_nodes(address: str, job: str | None = None) -> dict[str, set[str]]:
    """Actor class -> ids of the nodes its actors ran on (``job``: only that job's actors, by hex job id), e.g.
    ``{"WorkerDict": {a, b}, "HFServer": {a, b}, "TaskRunnerV1": {a}, ...}`` after a two-node trainer run."""
    nodes: dict[str, set[str]] = {}
    for record in actor_records(address):
        if job is None or record["job"] == job:
            nodes.setdefault(record["class"], set()).add(record["node"])
    return nodes
