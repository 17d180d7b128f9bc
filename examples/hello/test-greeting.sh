#!/bin/sh
# `make check`: the program prints the greeting and exits 0.
set -eu
out=$(./hello)
if [ "$out" != "Hello container!" ]; then
    echo "unexpected output: $out" >&2
    exit 1
fi
