"""Reading and writing video files: the PyAV decoder with its registry (decoder.py: probe, exact frames by index,
skipping of unneeded frames, odd timestamps) and the frame writer (writer.py). Knows nothing of datasets, clips
or models; datasets, visualization, preparation and inference read videos through it."""
