"""Streaming datasets and loader builders. Kept import-free on purpose: import the submodules you need."""
