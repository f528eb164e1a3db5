"""Files and safe writing: the image codec, image headers, bounded reading of input files and atomic writes."""
