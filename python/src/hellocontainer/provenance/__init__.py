"""What an image says about where it came from: its SBOM, attached as an OCI referrer.

It imports `oci`, `errors` and `sourcedate`; the image room calls it while building.
"""
