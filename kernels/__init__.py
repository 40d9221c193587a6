"""Kernel sources, trees, configs and builds for ltsp-mosix."""
