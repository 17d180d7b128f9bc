"""The license, in the form the running setuptools knows: an SPDX expression (PEP 639) from
setuptools 77 on, the older `License:` field before it. Everything else is in pyproject.toml."""

import setuptools

PEP_639 = int(setuptools.__version__.split(".")[0]) >= 77
setuptools.setup(**({"license_expression": "MIT"} if PEP_639 else {"license": "MIT"}))
