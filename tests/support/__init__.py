"""Helpers shared by tests: servers they start and records they build."""
