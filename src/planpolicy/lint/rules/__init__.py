"""Lint rules beyond compile errors: one small module per rule."""
