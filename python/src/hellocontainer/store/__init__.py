"""Publishing into a layout: the lock, staging folders, the atomic index, gc and archives.

Every byte a command writes into a layout or beside it goes through here, so crash safety is
made in one place. It imports `oci` and `errors`, never a room above it.
"""
