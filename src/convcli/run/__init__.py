"""Running requests over inputs.

request (build_request: everything needed to process any input, checked once), sources (what
the inputs are), naming (where results go), process (one input), pool (local workers), cluster
(Dask), runner (a batch, locally or on a cluster), explain (--explain).
"""
