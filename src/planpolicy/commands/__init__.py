"""CLI verbs, one module each."""
