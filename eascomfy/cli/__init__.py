"""The command-line interface (typer). Thin: parse, call the library, print through output.py."""
