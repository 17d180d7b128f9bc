################################################################################
#
# hellocontainer
#
################################################################################

# The packager's version in python/pyproject.toml (a test keeps them equal).
# legal-info needs one: without it, Buildroot counts a package as part of
# Buildroot itself and lists it nowhere.
HELLOCONTAINER_VERSION = 0.1.0
# The packager is the python/ directory of the repository that holds this
# br2-external tree, so a checkout always builds the packager it ships.
HELLOCONTAINER_SITE = $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/../python
HELLOCONTAINER_SITE_METHOD = local
HELLOCONTAINER_SETUP_TYPE = setuptools
HELLOCONTAINER_LICENSE = MIT
# A copy of the repository's LICENSE, inside the package's source folder
# where legal-info looks for it.
HELLOCONTAINER_LICENSE_FILES = LICENSE

# Leftovers of a developer's editable install or lint run are not sources.
HOST_HELLOCONTAINER_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude __pycache__ \
	--exclude '*.egg-info' \
	--exclude .ruff_cache \
	--exclude /build \
	--exclude /dist

# schema.py imports referencing itself (host-python-jsonschema pulls it in
# too, but only as its own runtime dependency).
HOST_HELLOCONTAINER_DEPENDENCIES = \
	host-python-jsonschema \
	host-python-pyelftools \
	host-python-pyyaml \
	host-python-referencing

# Shell completion and the manual page, generated from the packager's own
# parser at build time, where host packages put them in $(HOST_DIR).
define HOST_HELLOCONTAINER_INSTALL_SHELL_FILES
	$(INSTALL) -d $(HOST_DIR)/share/bash-completion/completions \
		$(HOST_DIR)/share/zsh/site-functions $(HOST_DIR)/share/man/man1
	$(HOST_DIR)/bin/hellocontainer completion bash \
		> $(HOST_DIR)/share/bash-completion/completions/hellocontainer
	$(HOST_DIR)/bin/hellocontainer completion zsh \
		> $(HOST_DIR)/share/zsh/site-functions/_hellocontainer
	$(HOST_DIR)/bin/hellocontainer manpage \
		> $(HOST_DIR)/share/man/man1/hellocontainer.1
endef
HOST_HELLOCONTAINER_POST_INSTALL_HOOKS += HOST_HELLOCONTAINER_INSTALL_SHELL_FILES

$(eval $(host-python-package))
