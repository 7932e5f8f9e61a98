"""Whole-video inference and the model you use outside training: `vtn.load`'s VideoModel (model.py), streaming
at bounded memory, the timeline of windows, batch prediction, feature extraction, export and the demo. Uses the
engine (checkpoints, the test phase's loading); the engine never imports it."""
