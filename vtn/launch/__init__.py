"""Launching a job and setting up its run: the command line and its error policy (cli.py), starting the
processes (processes.py), SLURM (slurm.py), the run's phases (run.py) and the preflight check (preflight/).
Uses the engine and inference; nothing below imports it."""
