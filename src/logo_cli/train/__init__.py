"""Training: the one step loop (`loop.fit`) with its hooks, and the policy learners behind
`logo train-policy --algo` (`learners/`, looked up in `registry.py`)."""
