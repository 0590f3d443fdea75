"""Analytics on the stage-history stream."""
