"""Commands of the `mainland` CLI, one subject per module (loaded by inbox/cli.py)."""
