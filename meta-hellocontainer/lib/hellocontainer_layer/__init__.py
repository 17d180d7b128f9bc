#
# SPDX-License-Identifier: MIT
#
"""The Python of meta-hellocontainer's classes, imported by BitBake through `addpylib`.

The package is not called `hellocontainer`: that is the packager's own package, which the
layer's tests import in the same Python process. BitBake parses every public function of the
modules in BBIMPORTS, so the variables they read are part of the signature of each task that
calls them (by their full name, hellocontainer_layer.image.package(d)).
"""

BBIMPORTS = ["image", "index", "spdx2"]
