"""Callbacks: run lifecycle, metrics, sample grids, progress, metrics.csv."""
