"""One module per `logo` command: parse options, show progress, call a stage, print the result.

Add a command by writing `commands/<module>.py` with a function named `command` and listing it here.
"""

COMMANDS: list[tuple[str, str]] = [
    ("collect", "collect"),
    ("convert", "convert"),
    ("inspect", "inspect"),
    ("status", "status"),
    ("pretrain", "pretrain"),
    ("rollout", "rollout"),
    ("calibrate", "calibrate"),
    ("train-policy", "train_policy"),
    ("evaluate", "evaluate"),
    ("export", "export"),
    ("sweep", "sweep"),
]
