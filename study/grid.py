"""The paper's temperature grid (docs/protocol.md, "Metrics"): T = 0.01, 0.02, …, 4.99, as integers
over a scale so that its edges can be named without torch (the analysis warns about fitted
temperatures at the edges and should not pay torch's import for two numbers)."""

GRID_FIRST, GRID_LAST, GRID_SCALE = 1, 499, 100  # T = k / GRID_SCALE for k in FIRST..LAST
GRID_EDGES = (GRID_FIRST / GRID_SCALE, GRID_LAST / GRID_SCALE)  # (0.01, 4.99)
