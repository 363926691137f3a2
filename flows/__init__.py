"""Flows: the only code that composes jobs (deploy, compression stages, FINN build, report) as named steps."""
