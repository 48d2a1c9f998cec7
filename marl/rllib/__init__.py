"""Pieces that plug into RLlib's extension points (env runners, episode building)."""
