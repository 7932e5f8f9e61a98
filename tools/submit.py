#!/usr/bin/env python
"""Submit a training/testing job to SLURM with submitit (pip install -e ".[slurm]"):

    python tools/submit.py --cfg configs/Kinetics/VIT_B_VTN.yaml --nodes 2 --gpus-per-node 8 \
        --partition learnfair --account myproject --qos normal --mem 400G --constraint volta32gb \
        --time 3-00:00:00 DATA.PATH_TO_DATA_DIR /data/k400

NUM_GPUS and NUM_SHARDS are set from --gpus-per-node and --nodes. A preempted or timed-out job is requeued
and resumes from the newest checkpoint of OUTPUT_DIR (TRAIN.AUTO_RESUME). The SLURM options map to submitit's
executor parameters (slurm_partition, slurm_account, slurm_qos, slurm_mem, slurm_constraint, timeout_min,
gpus_per_node, cpus_per_task); one left out is the cluster's default.
"""

import argparse
import math
import os

from vtn.launch.cli import base_parser, config_from_args, parse, run_main


def build_parser():
    """The command line of this tool (tests/test_docs.py parses the documented commands with it)."""
    parser = base_parser("Submit a training and testing job to SLURM with submitit.")
    parser.add_argument("--nodes", type=int, default=1, help="Machines of the job (sets NUM_SHARDS; default: 1).")
    parser.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs (processes) per machine (sets NUM_GPUS; default: 8)."
    )
    parser.add_argument("--partition", default="", help="The SLURM partition (default: the cluster's).")
    parser.add_argument("--account", default="", help="The SLURM account charged for the job (default: yours).")
    parser.add_argument("--qos", default="", help="The SLURM quality of service (default: the cluster's).")
    parser.add_argument(
        "--mem", default="", help="Memory per node in SLURM's syntax, e.g. 400G (default: the cluster's)."
    )
    parser.add_argument(
        "--constraint", default="", help="SLURM node features the job needs, e.g. volta32gb (default: none)."
    )
    parser.add_argument(
        "--time",
        "--timeout",
        dest="time",
        type=slurm_minutes,
        default=60 * 72,
        metavar="TIME",
        help="Time limit, after which SLURM stops the job and it is requeued: minutes or SLURM's D-HH:MM:SS "
        "(--timeout is the same option; default: 4320 minutes).",
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


def slurm_minutes(text: str) -> int:
    """SLURM's time formats (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) as whole minutes, rounded up."""
    try:
        days, sep, clock = text.strip().rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if len(parts) > 3 or min(parts) < 0 or (sep and not days):
            raise ValueError
        if days:  # D-HH, D-HH:MM, D-HH:MM:SS
            hours, minutes, seconds = (parts + [0, 0])[:3]
            total = int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
        else:  # MM, MM:SS, HH:MM:SS
            units = {1: [60], 2: [60, 1], 3: [3600, 60, 1]}[len(parts)]
            total = sum(p * u for p, u in zip(parts, units))
        if total <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time limit: give minutes (4320) or SLURM's D-HH:MM:SS (3-00:00:00), above 0"
        ) from None
    return math.ceil(total / 60)


def submit_job(args) -> None:
    cfg = config_from_args(args, ["NUM_GPUS", args.gpus_per_node, "NUM_SHARDS", args.nodes, "SHARD_ID", 0])
    job_dir = args.job_dir or os.path.join(cfg.OUTPUT_DIR, "submitit")

    from vtn.launch.slurm import submit

    job = submit(
        cfg,
        args.nodes,
        args.gpus_per_node,
        job_dir,
        cluster=args.cluster,
        partition=args.partition,
        timeout_min=args.time,
        cpus_per_task=args.cpus_per_task,
        account=args.account,
        qos=args.qos,
        mem=args.mem,
        constraint=args.constraint,
    )
    print(f"submitted job {job.job_id}; logs in {job_dir}")
    if args.cluster in ("local", "debug"):
        print(f"finished: {job.result()}")


def main(argv=None):
    args = parse(build_parser(), argv)
    run_main("submit", lambda: submit_job(args))


if __name__ == "__main__":
    main()
