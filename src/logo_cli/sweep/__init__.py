"""`logo sweep`: a reproduction grid (maps x datasets x methods x seeds) run as a graph of stage tasks on
Ray. grid.py reads the TOML file, graph.py expands it into tasks keyed by their inputs, task.py runs one
stage in a Ray worker, execute.py schedules the graph, progress.py shows it, report/ aggregates;
stage_commands.py holds the `logo` commands the command line hands down to it."""
