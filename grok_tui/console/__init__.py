"""The headless front ends: what a command shows on a terminal without the app.

    training.py    one run: a progress bar, the phase and forecast, a summary line
    sweep.py       a sweep: a live table of its members, a summary
    report.py      `analyze`: the report as a table
    importing.py   a published run imported, with a progress bar

They draw with rich and drive the engine, which draws nothing.
"""
