"""Tuning experiments: sweeps, A/B comparisons, searches and expectations.

The drivers here run against a :class:`~ezmsg_lab.experiments.bench.Bench` (what the
Lab's experiments service provides: set a point, wait, measure a window, restore), so
they and the statistics they use import no ezmsg and are tested on their own.
"""
