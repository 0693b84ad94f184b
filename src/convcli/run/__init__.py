"""Running requests over inputs.

sources (what the inputs are), request (everything needed to process any input), naming (where
results go), process (one input), pool (local workers), cluster (Dask), explain (--explain).
"""
