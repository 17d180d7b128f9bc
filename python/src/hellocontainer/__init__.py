"""hellocontainer: one static binary in, a small reproducible OCI image layout out."""

__version__ = "0.1.0"
