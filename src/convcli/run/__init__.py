"""Running requests over inputs: naming outputs, one input at a time, local workers, Dask."""
