"""The OCI model and the one bounded, verified way to read an image layout.

Descriptors, media types, digests, schemas, platforms and referrers live here, with the reader
every command goes through, and `value.py`, the base of the package's value types. This room
imports nothing of ours but `errors`: it is the floor.
"""
