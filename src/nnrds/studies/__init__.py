"""One module per study; each exposes the functions its rules call through :mod:`nnrds.cli`."""
