"""The numbers: plans, boundaries, the evaluator, the pixel mapping and the backends."""
