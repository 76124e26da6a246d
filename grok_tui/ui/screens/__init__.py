"""The app's screens: run (panes, status bar, timeline), sweep, compare, go to epoch."""
