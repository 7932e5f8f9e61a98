"""Offline data preparation, run before training: resizing a dataset's videos (resize.py, the jobs in
resize_jobs.py) and checking that every listed video decodes (check.py). Uses the data and video packages;
nothing at run time imports it."""
