"""Read-only tools over any layout: validate, inspect and diff.

They judge layouts built by anyone, so they import only `oci` (and `errors`); never `store`,
whose modules write and delete.
"""
