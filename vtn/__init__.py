"""vtn: Video Transformer Network (Neimark et al., 2021) as a PySlowFast-style research framework."""

__version__ = "0.1.0"
