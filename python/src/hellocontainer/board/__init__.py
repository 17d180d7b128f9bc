"""An image in, what a board runs out: the runtime bundle, its rootfs, config.json, init files.

It reads images through `oci` and publishes through `store`, and signs a bundle with
`provenance`'s keys; it never builds (`image`), so a board-side tool needs none of the build's
dependencies.
"""
