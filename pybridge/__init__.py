"""pybridge: the Python side of the hfbridge R package.

Each module covers one concern and returns only plain values that reticulate 1.28 converts
cheaply (see DESIGN.md, "Return conventions"). Importing the package imports nothing heavy.
"""

__version__ = "0.1.0"
