"""Peak-day drill: `python -m bench.peak [--minutes N] [--scale X] [--soak] [--report FILE]`."""
