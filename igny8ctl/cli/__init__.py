"""Typer command groups: parse options, call ``igny8ctl.api``, render, exit."""
