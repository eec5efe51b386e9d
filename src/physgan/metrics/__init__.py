"""Metrics of generated samples against real data or a known density."""

from physgan.metrics.modes import ModeStats, mode_stats

__all__ = ["ModeStats", "mode_stats"]
