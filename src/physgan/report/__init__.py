"""Figures and reports (matplotlib's object API only: no pyplot global state)."""
