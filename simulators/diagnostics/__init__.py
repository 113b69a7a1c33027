"""Diagnostics of simulated trajectories: how one simulator's deposits compare with another's."""
