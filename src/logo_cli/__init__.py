"""logo-cli: the LOGO local-to-global world model for offline multi-agent RL."""

__version__ = "0.1.0"
