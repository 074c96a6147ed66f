"""The command line: Typer commands that parse, call one function of the layer below, and print."""
