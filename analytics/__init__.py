"""Analytics on stage-history and transition logs: the `report` and `diff` commands (spec 6)."""
