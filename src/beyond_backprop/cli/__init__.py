"""The typer command line; rich output lives here, never in the library."""
