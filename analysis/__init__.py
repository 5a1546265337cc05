"""shadowbench analysis: turns result rows and dated price catalogs into cost per task. Knows nothing about how
rows were measured beyond their columns."""
