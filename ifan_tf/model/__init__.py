"""The IFAN architecture: IAC layer, deblurring network and reblurring network."""
