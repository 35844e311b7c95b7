"""Several processes, one run: the rank from the launcher, work split across ranks, results gathered.

``torchrun --nproc_per_node N $(which seal-run) run ...`` and ``deepspeed --num_gpus N $(which seal-run) run ...``
both start N copies of ``seal-run`` with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT`` set. :func:`init` joins them into one process group (gloo on CPU, nccl on
GPU). Every rank then runs the same loop on the same data:

- self-edits: each rank writes those of its own slice of the tasks (generation is seeded per
  task, so who writes a task's edits does not change them); the slices are gathered, so every
  rank holds every self-edit, the same on every rank by construction;
- the inner loop: each rank scores its slice of the (task, edit) items; the results are gathered
  after each wave (:func:`waves`), in the order of the one-process run;
- the outer update: data-parallel under DeepSpeed (:mod:`seal_core.rl.zero`);
- only rank 0 writes files: the others get a :class:`seal_core.runs.store.FollowerStore`, whose
  writes do nothing.

In one process (no ``WORLD_SIZE``, or 1) every helper here is the identity and nothing is imported
or initialised, so the single-process path runs exactly as without this module.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import structlog
import torch

from seal_core.runtime.interrupt import Interrupted, StopFlag

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _dist() -> Any:
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    """Number of ranks: the process group's, else the launcher's ``WORLD_SIZE``, else 1."""
    dist = _dist()
    return dist.get_world_size() if dist else int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank (0 in one process)."""
    dist = _dist()
    return dist.get_rank() if dist else int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """This process's rank on its node: the GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """True on rank 0, the one rank that writes the run directory."""
    return rank() == 0


def active() -> bool:
    """True when more than one rank takes part."""
    return world_size() > 1


def backend(device: str) -> str:
    """``nccl`` when the model runs on CUDA, ``gloo`` on CPU."""
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(device: str = "auto", *, single: bool = False, timeout: float = 1800.0) -> None:
    """Join the launcher's process group; a no-op in one process or when already joined.

    On CUDA each rank takes the GPU ``LOCAL_RANK`` (so ``model.device=auto`` or ``cuda`` means
    that GPU). ``single=True`` makes a one-rank group in a process started without a launcher
    (DeepSpeed needs a process group even for one rank). ``timeout``: seconds a collective waits
    for the other ranks before it raises (``trainer.collective_timeout``), so that a rank that died
    or stalls ends the job (the launcher then stops the others) instead of hanging it.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1 and not single:
        return
    if "RANK" not in os.environ:  # one process, no launcher: a one-rank group on this machine
        os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": str(_free_port())})
    name = backend(device)
    if name == "nccl":
        torch.cuda.set_device(local_rank())
    limit = datetime.timedelta(seconds=timeout)
    dist.init_process_group(backend=name, timeout=limit)
    # DeepSpeed makes its data-parallel groups with new_group() and no timeout, which torch fills
    # with its 30-minute default: a rank stalled in the update would hang the job that long.
    from torch.distributed import distributed_c10d

    distributed_c10d.default_pg_timeout = distributed_c10d.default_pg_nccl_timeout = limit
    log.info("process group joined", rank=rank(), world_size=world_size(), backend=name, timeout=timeout)


def finish() -> None:
    """Leave the process group (at the end of a run; nothing in one process)."""
    dist = _dist()
    if dist is not None:
        dist.destroy_process_group()


def shard(items: Sequence[T], of: int | None = None, at: int | None = None) -> list[T]:
    """This rank's contiguous slice of ``items`` (sizes differ by at most one; earlier ranks get more).

    Contiguous rather than strided, so that a task's k self-edits mostly land on one rank: its
    unadapted score is then computed once, and a batching inner loop gets them together.
    """
    of = world_size() if of is None else of
    at = rank() if at is None else at
    size, extra = divmod(len(items), of)
    start = at * size + min(at, extra)
    return list(items[start:start + size + (at < extra)])


def gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank; ``[obj]`` in one process."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_lists(items: list[T]) -> list[T]:
    """The ranks' lists joined in rank order: undoes :func:`shard`."""
    return [x for part in gather(items) for x in part]


def broadcast(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` (picklable) on every rank."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_tensors(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s ``tensors`` into every rank's, in place, one by one (the same tensors,
    in the same order, on every rank)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return
    for tensor in tensors:
        dist.broadcast(tensor.data, src=src)


def waves(items: Sequence[T], per_rank: int) -> Iterator[list[T]]:
    """``items`` cut into waves of ``per_rank`` items for each rank; each wave is then
    :func:`shard`-ed, scored, and :func:`gather_lists`-ed, so results reach rank 0 (and the run
    directory) wave by wave instead of only at the end of the round."""
    size = max(1, per_rank) * world_size()
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


class AgreedStop:
    """A stop flag that every rank reads the same: :meth:`check` raises on all ranks or on none.

    The engine calls ``check()`` at the same points on every rank (they process the same rows),
    so a Ctrl-C seen by any rank stops all of them at one point, never leaving one rank waiting
    in a collective for the others.
    """

    def __init__(self, local: StopFlag):
        self.local = local

    @property
    def requested(self) -> bool:
        return self.local.requested

    def check(self) -> None:
        if any(gather(self.local.requested)):
            raise Interrupted
