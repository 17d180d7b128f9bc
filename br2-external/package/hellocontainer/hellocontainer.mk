################################################################################
#
# hellocontainer
#
################################################################################

# The packager is the python/ directory of the repository that holds this
# br2-external tree, so a checkout always builds the packager it ships.
HELLOCONTAINER_SITE = $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/../python
HELLOCONTAINER_SITE_METHOD = local
HELLOCONTAINER_SETUP_TYPE = setuptools
HELLOCONTAINER_LICENSE = MIT

# Leftovers of a developer's editable install or lint run are not sources.
HOST_HELLOCONTAINER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude __pycache__ \
	--exclude '*.egg-info' \
	--exclude .ruff_cache \
	--exclude /build \
	--exclude /dist

HOST_HELLOCONTAINER_DEPENDENCIES = \
	host-python-jsonschema \
	host-python-pyelftools \
	host-python-pyyaml

$(eval $(host-python-package))
