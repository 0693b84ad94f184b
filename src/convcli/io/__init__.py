"""Files in and out, one job a module.

* :mod:`~convcli.io.formats`: format names and file suffixes
* :mod:`~convcli.io.limits`: the pixel limit (decompression bombs)
* :mod:`~convcli.io.inputs`: input files before a decoder sees them
* :mod:`~convcli.io.decode`: images in (Pillow, OpenCV), probing a header, EXIF orientation
* :mod:`~convcli.io.tiff`: TIFFs through tifffile
* :mod:`~convcli.io.encode`: images out; :mod:`~convcli.io.png`: the parallel PNG writer
* :mod:`~convcli.io.arrays`: numeric arrays in and out (.npy, .csv, .txt, .json)
* :mod:`~convcli.io.atomic`: atomic writes, results written band by band, part files
* :mod:`~convcli.io.rows`: rows of a file read on demand (streaming)
"""
