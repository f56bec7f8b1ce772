"""Losses and update steps as functions of (networks, batch)."""
