"""Files in and out: image and array formats, decoders, encoders, row readers, atomic writes."""
