"""Subcommands of ``openmodel``, one module each; each exposes ``register(subparsers)``."""
