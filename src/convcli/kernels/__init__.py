"""Kernels as data: the value objects, the registry of specs, parametric generators and the
file formats (TOML/JSON, ImageMagick strings, libvips matrices). Depends only on
convcli.errors, convcli.numeric, convcli.paths and convcli.vocabulary."""
