"""Data parallelism and independent runs over MPI ranks.

``world``: the ranks of a job and their collectives (MPI on the host, NCCL on GPUs), and the
world a Trainer trains in; ``runs``: :func:`map_runs`, independent runs spread over the ranks;
``launch``: starting ranks with ``mpirun``.
"""
from .launch import find_mpirun, mpirun_command
from .runs import map_runs
from .world import (MPI_INSTALL_HINT, NCCL_INSTALL_HINT, WORLD_SIZE_ENV, World, get_world,
                    launched_world_size, rank_device, rank_stream, spread_random_streams,
                    training_world)

__all__ = ["MPI_INSTALL_HINT", "NCCL_INSTALL_HINT", "WORLD_SIZE_ENV", "World", "find_mpirun",
           "get_world", "launched_world_size", "map_runs", "mpirun_command", "rank_device",
           "rank_stream", "spread_random_streams", "training_world"]
