"""A binary and its settings in, an image out: spec, ELF facts, layer, config, manifest.

The build runs one way, spec → ELF check → layer → config → manifest → validate → publish, so
this room may import `oci`, `store`, `check` and `provenance`, and nothing imports it but `cli`.
"""
