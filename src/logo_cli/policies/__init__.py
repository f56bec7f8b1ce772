"""Team policies that act in a simulator or drive world-model rollouts."""
