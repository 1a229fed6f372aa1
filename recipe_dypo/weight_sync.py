"""verl's vLLM weight sync, bounded: a receiver that fails or hangs ends the run with an error instead of a hang.

verl 0.9.1 syncs the trainer's weights into vLLM (verl/workers/rollout/vllm_rollout/vllm_rollout.py:229-244) by
starting the receiver in the vLLM workers (``collective_rpc("update_weights_from_ipc")``, non-blocking) and then
sending buckets over a ZMQ REQ socket (bucketed_weight_transfer.py), waiting for the receiver's answer after each
bucket with a blocking ``socket.recv()`` that has no timeout (and a REQ socket's send blocks while no receiver is
connected). When the receiver raises, nobody answers: the trainer waits forever, with the receiver's error visible
only in the vLLM server's log.

:class:`GuardedServerAdapter` is verl's vLLM ``ServerAdapter`` with those waits made watchful: while waiting it
checks, once a second, whether the receiver's RPC has finished (then its error is raised in the
trainer, naming the rollout server) and gives up after ``DYPO_WEIGHT_SYNC_TIMEOUT_S`` seconds without an answer
(default 1800; a bucket of 512 MB normally takes well under a minute). :mod:`recipe_dypo.plugin` registers it as
the ``vllm`` rollout on every platform (this module imports vLLM's half of verl, so it loads only when a config
selects the vLLM rollout); ``DYPO_WEIGHT_SYNC_TIMEOUT_S=0`` keeps verl's own adapter. Weights, buckets and the
protocol are verl's, untouched.
"""

from __future__ import annotations

import time

import ray
import zmq
from verl.workers.rollout.vllm_rollout import vllm_rollout
from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightSender

from recipe_dypo.plugin import WEIGHT_SYNC_TIMEOUT_ENV as TIMEOUT_ENV
from recipe_dypo.plugin import weight_sync_timeout_s

POLL_MS = 1000
RECEIVER_METHOD = "update_weights_from_ipc"

_receiver = {"ref": None}  # the running receiver RPC of this process's adapter (one sync at a time per worker)


class WeightSyncError(RuntimeError):
    """The rollout server's weight receiver failed, or did not answer in time."""


def wait_for_peer(socket, flag: int, receiver_ref, timeout_s: float) -> None:
    """Wait until ``socket`` can send (``zmq.POLLOUT``; a REQ socket blocks while no receiver is connected) or has
    an answer (``zmq.POLLIN``); fail when the receiver RPC ``receiver_ref`` has ended meanwhile, or after
    ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not socket.poll(POLL_MS, flag):
        if receiver_ref is not None and ray.wait([receiver_ref], timeout=0)[0]:
            try:
                ray.get(receiver_ref)
            except Exception as exc:  # noqa: BLE001  (any receiver error ends the sync, with its cause)
                raise WeightSyncError(f"vLLM weight sync failed in the rollout server's receiver: {exc}") from exc
            raise WeightSyncError("vLLM weight sync: the rollout server's receiver returned without answering")
        if time.monotonic() > deadline:
            raise WeightSyncError(
                f"vLLM weight sync: no answer from the rollout server within {timeout_s:.0f} s ({TIMEOUT_ENV})"
            )


class _WatchfulSocket:
    """The sender's ZMQ socket; each send and receive first waits with :func:`wait_for_peer`."""

    def __init__(self, socket, receiver_ref, timeout_s: float):
        self._socket, self._receiver_ref, self._timeout_s = socket, receiver_ref, timeout_s

    def _wait(self, flag: int) -> None:
        wait_for_peer(self._socket, flag, self._receiver_ref, self._timeout_s)

    def send_pyobj(self, obj):
        self._wait(zmq.POLLOUT)
        return self._socket.send_pyobj(obj)

    def recv(self):
        self._wait(zmq.POLLIN)
        return self._socket.recv()

    def __getattr__(self, name):
        return getattr(self._socket, name)


class WatchfulWeightSender(BucketedWeightSender):
    def _init_socket(self):
        super()._init_socket()
        self.socket = _WatchfulSocket(self.socket, _receiver["ref"], weight_sync_timeout_s())


class GuardedServerAdapter(vllm_rollout.ServerAdapter):
    """verl's vLLM ServerAdapter whose weight sender watches the receiver it started."""

    async def _execute_method(self, method: str, non_block: bool = False, **kwargs):
        result = await super()._execute_method(method, non_block=non_block, **kwargs)
        if method == RECEIVER_METHOD and non_block:
            _receiver["ref"] = result
        return result


# update_weights builds its sender from this module-level name (vllm_rollout.py:235).
vllm_rollout.BucketedWeightSender = WatchfulWeightSender
