"""Post processors: ``qa-post``, ``s2cloudless``, ``fmask`` (quality mask on the grid)."""
