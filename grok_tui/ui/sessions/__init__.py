"""The threads behind each screen, and what they have read: run, sweep, compare."""
