"""Coordination analysis: metrics and plots of emergent coordination in trained policies (in progress)."""
