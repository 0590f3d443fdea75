"""Analytics on stage-history and transition logs: `report`, `diff` (spec 6) and the
stay histograms of the live statistics (spec 6.4)."""
