"""The collectives of vtn/engine/distributed.py between real gloo processes."""

import os

import torch
import torch.multiprocessing as mp

from tests.servers import free_port


def _gather_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from vtn.engine import distributed as du

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    row = torch.tensor([[rank, 10.0 * rank, -1.0]], dtype=torch.float64)
    torch.save({"rows": du.all_gather_rows(row), "cat": du.all_gather_cat(row)}, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def test_all_gather_rows_stacks_every_rank_in_rank_order(tmp_path):
    world = 3
    mp.spawn(_gather_worker, args=(world, free_port(), str(tmp_path)), nprocs=world)
    expected = torch.tensor([[r, 10.0 * r, -1.0] for r in range(world)], dtype=torch.float64)
    for rank in range(world):
        out = torch.load(tmp_path / f"{rank}.pt")
        assert torch.equal(out["rows"], expected) and torch.equal(out["cat"], expected), rank


def test_one_process_gathers_its_own_rows():
    from vtn.engine import distributed as du

    row = torch.ones(1, 4)
    assert du.all_gather_rows(row) is row
