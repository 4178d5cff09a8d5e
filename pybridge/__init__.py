"""pybridge: the Python side of the hfbridge R package.

Each module covers one concern and returns only plain values that reticulate 1.28 converts
cheaply (see DESIGN.md, "Return conventions"). Importing the package imports nothing heavy.
"""

__version__ = "0.1.0"

# Inside R, R's reference BLAS would take over torch's matrix products (8x slower): any later
# `import torch` in this process goes through pybridge.torch_guard, which prevents that.
from .torch_guard import guard_torch_import as _guard_torch_import  # noqa: E402

_guard_torch_import()
