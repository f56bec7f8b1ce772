"""Pipeline stages: run(config, progress) -> result; no printing, no Typer."""
