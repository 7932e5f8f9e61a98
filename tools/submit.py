#!/usr/bin/env python
"""Submit a training/testing job to SLURM with submitit (pip install -e ".[slurm]"):

    python tools/submit.py --cfg configs/Kinetics/VIT_B_VTN.yaml --nodes 2 --gpus-per-node 8 \
        --partition learnfair --timeout 4320 DATA.PATH_TO_DATA_DIR /data/k400

NUM_GPUS and NUM_SHARDS are set from --gpus-per-node and --nodes. A preempted or timed-out job is requeued
and resumes from the newest checkpoint of OUTPUT_DIR (TRAIN.AUTO_RESUME).
"""

import os

from vtn.engine.cli import base_parser, config_from_args, parse, run_main
from vtn.engine.slurm import submit


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Submit a training and testing job to SLURM with submitit.")
    parser.add_argument("--nodes", type=int, default=1, help="Machines of the job (sets NUM_SHARDS; default: 1).")
    parser.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs (processes) per machine (sets NUM_GPUS; default: 8)."
    )
    parser.add_argument("--partition", default="", help="The SLURM partition.")
    parser.add_argument(
        "--timeout",
        type=int,
        default=60 * 72,
        help="Minutes before SLURM stops the job, which is then requeued (default: 4320).",
    )
    parser.add_argument("--cpus-per-task", type=int, default=10, help="CPUs per process (default: 10).")
    parser.add_argument("--job-dir", default="", help="The folder of submitit's logs (default: OUTPUT_DIR/submitit).")
    parser.add_argument(
        "--cluster",
        default=None,
        choices=[None, "slurm", "local", "debug"],
        help="The submitit cluster (default: SLURM when available); 'local' runs the job here.",
    )
    return parser


def submit_job(args) -> None:
    cfg = config_from_args(args, ["NUM_GPUS", args.gpus_per_node, "NUM_SHARDS", args.nodes, "SHARD_ID", 0])
    job_dir = args.job_dir or os.path.join(cfg.OUTPUT_DIR, "submitit")
    job = submit(
        cfg, args.nodes, args.gpus_per_node, args.partition, args.timeout, job_dir, args.cpus_per_task, args.cluster
    )
    print(f"submitted job {job.job_id}; logs in {job_dir}")
    if args.cluster in ("local", "debug"):
        print(f"finished: {job.result()}")


def main(argv=None):
    args = parse(build_parser(), argv)
    run_main("submit", lambda: submit_job(args))


if __name__ == "__main__":
    main()
