"""Discrete-event simulation of a cluster through the real master code path."""
