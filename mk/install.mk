# Installing Palisade: `make install` (included by the top-level Makefile, or on its own with
# `make -f mk/install.mk install`).
#
#   cargo build --release          # as yourself, first
#   sudo make install              # copies into $(DESTDIR)$(PREFIX), builds nothing but catalogues
#
# DESTDIR stages into a tree for packaging; PREFIX defaults to /usr because the system bus and
# polkit only read their files below /usr/share (and /etc), never /usr/local. Every directory
# below can be overridden on the command line. The helper's path is written into the systemd
# units and the D-Bus activation file as installed, so LIBEXECDIR may change too.
#
# Files another part of the tree has not created yet (desktop file, metainfo, icons, catalogues)
# are skipped, not errors. The release binaries are required, except the GUI `palisade`, which
# exists only when the app was built with its `gui` feature (the default).

# Keep whatever default goal the including Makefile has: this file's first target must not
# become it.
palisade_saved_default_goal := $(.DEFAULT_GOAL)

PALISADE_TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
LOCALEDIR ?= $(DATADIR)/locale
DOCDIR ?= $(DATADIR)/doc/palisade
POLKIT_ACTIONDIR ?= $(DATADIR)/polkit-1/actions
POLKIT_RULESDIR ?= $(DATADIR)/polkit-1/rules.d
DBUS_SYSTEM_CONFDIR ?= $(DATADIR)/dbus-1/system.d
DBUS_SYSTEM_SERVICEDIR ?= $(DATADIR)/dbus-1/system-services
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
APPLICATIONSDIR ?= $(DATADIR)/applications
METAINFODIR ?= $(DATADIR)/metainfo
ICONDIR ?= $(DATADIR)/icons/hicolor

CARGO_TARGET_DIR ?= $(PALISADE_TOP)/target
RELEASE_DIR ?= $(CARGO_TARGET_DIR)/release
MSGFMT ?= msgfmt
INSTALL ?= install

# Catalogues: po/<lang>.po -> target/locale/<lang>/LC_MESSAGES/palisade.mo
PALISADE_PO := $(wildcard $(PALISADE_TOP)/po/*.po)
PALISADE_LANGS := $(basename $(notdir $(PALISADE_PO)))
PALISADE_LOCALE_BUILD := $(CARGO_TARGET_DIR)/locale
PALISADE_MO := $(foreach l,$(PALISADE_LANGS),$(PALISADE_LOCALE_BUILD)/$(l)/LC_MESSAGES/palisade.mo)

# Data files that may or may not exist yet.
PALISADE_DESKTOP := $(wildcard $(PALISADE_TOP)/data/*.desktop)
PALISADE_METAINFO := $(wildcard $(PALISADE_TOP)/data/*.metainfo.xml)
PALISADE_EXAMPLES := $(wildcard $(PALISADE_TOP)/data/examples/*)

# Rewrites the helper's path for a LIBEXECDIR other than /usr/libexec.
PALISADE_SUBST := sed -e 's|/usr/libexec/palisade-helper|$(LIBEXECDIR)/palisade-helper|g'

# $(call palisade_install,MODE,SOURCE,DESTINATION): one shell command, printing what it does.
palisade_install = echo "install $(3)" && $(INSTALL) -Dm$(1) "$(2)" "$(3)"
# $(call palisade_install_subst,SOURCE,DESTINATION): the same for files naming the helper's path.
palisade_install_subst = echo "install $(2)" && $(INSTALL) -d -m755 "$$(dirname "$(2)")" && \
	$(PALISADE_SUBST) "$(1)" > "$(2).tmp" && chmod 644 "$(2).tmp" && mv "$(2).tmp" "$(2)"

.PHONY: locale install uninstall

## locale: compile po/*.po into target/locale/<lang>/LC_MESSAGES/palisade.mo
locale: $(PALISADE_MO)

$(PALISADE_LOCALE_BUILD)/%/LC_MESSAGES/palisade.mo: $(PALISADE_TOP)/po/%.po
	@mkdir -p $(dir $@)
	$(MSGFMT) --check --output-file=$@.tmp $<
	@mv $@.tmp $@

## install: copy everything into $(DESTDIR)$(PREFIX)
install: locale
	@for b in palisade-helper palisadectl; do \
	  if [ ! -x "$(RELEASE_DIR)/$$b" ]; then \
	    echo "install: $(RELEASE_DIR)/$$b is missing; run 'cargo build --release' first" >&2; \
	    exit 1; \
	  fi; \
	done
	@$(call palisade_install,755,$(RELEASE_DIR)/palisade-helper,$(DESTDIR)$(LIBEXECDIR)/palisade-helper)
	@$(call palisade_install,755,$(RELEASE_DIR)/palisadectl,$(DESTDIR)$(BINDIR)/palisadectl)
	@if [ -x "$(RELEASE_DIR)/palisade" ]; then \
	  $(call palisade_install,755,$(RELEASE_DIR)/palisade,$(DESTDIR)$(BINDIR)/palisade); \
	else \
	  echo "skip    $(BINDIR)/palisade: no $(RELEASE_DIR)/palisade (built without the gui feature?)"; \
	fi
# polkit
	@$(call palisade_install,644,$(PALISADE_TOP)/polkit/io.palisade.policy,$(DESTDIR)$(POLKIT_ACTIONDIR)/io.palisade.policy)
	@$(call palisade_install,644,$(PALISADE_TOP)/polkit/50-io.palisade.rules,$(DESTDIR)$(POLKIT_RULESDIR)/50-io.palisade.rules)
# D-Bus
	@$(call palisade_install,644,$(PALISADE_TOP)/data/dbus/io.palisade.Helper1.conf,$(DESTDIR)$(DBUS_SYSTEM_CONFDIR)/io.palisade.Helper1.conf)
	@$(call palisade_install_subst,$(PALISADE_TOP)/data/dbus/io.palisade.Helper1.service,$(DESTDIR)$(DBUS_SYSTEM_SERVICEDIR)/io.palisade.Helper1.service)
# systemd
	@for u in palisade-helper.service palisade-apply.service; do \
	  $(call palisade_install_subst,$(PALISADE_TOP)/data/systemd/$$u,$(DESTDIR)$(SYSTEMD_UNITDIR)/$$u) || exit 1; \
	done
	@$(call palisade_install,644,$(PALISADE_TOP)/data/tmpfiles.d/palisade.conf,$(DESTDIR)$(TMPFILESDIR)/palisade.conf)
# desktop integration (each only when present)
	@for f in $(PALISADE_DESKTOP); do \
	  $(call palisade_install,644,$$f,$(DESTDIR)$(APPLICATIONSDIR)/$$(basename "$$f")) || exit 1; \
	done
	@for f in $(PALISADE_METAINFO); do \
	  $(call palisade_install,644,$$f,$(DESTDIR)$(METAINFODIR)/$$(basename "$$f")) || exit 1; \
	done
	@if [ -d $(PALISADE_TOP)/data/icons ]; then \
	  cd $(PALISADE_TOP)/data/icons && find . -type f \( -name '*.svg' -o -name '*.png' \) | sort | \
	  while read -r f; do \
	    rel=$${f#./}; rel=$${rel#hicolor/}; \
	    $(call palisade_install,644,$$f,$(DESTDIR)$(ICONDIR)/$$rel) || exit 1; \
	  done; \
	fi
# translations
	@for l in $(PALISADE_LANGS); do \
	  $(call palisade_install,644,$(PALISADE_LOCALE_BUILD)/$$l/LC_MESSAGES/palisade.mo,$(DESTDIR)$(LOCALEDIR)/$$l/LC_MESSAGES/palisade.mo) || exit 1; \
	done
# documentation
	@$(call palisade_install,644,$(PALISADE_TOP)/README.md,$(DESTDIR)$(DOCDIR)/README.md)
	@for f in $(PALISADE_EXAMPLES); do \
	  $(call palisade_install,644,$$f,$(DESTDIR)$(DOCDIR)/examples/$$(basename "$$f")) || exit 1; \
	done
	@echo "Installed into $(DESTDIR)$(PREFIX). On a live system now run:"
	@echo "  systemd-tmpfiles --create palisade.conf && systemctl daemon-reload"
	@echo "  systemctl reload dbus && systemctl enable --now palisade-apply.service palisade-helper.service"

## uninstall: remove what install copied (never the policy in /etc/palisade or /var/lib/palisade)
uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/palisade-helper $(DESTDIR)$(BINDIR)/palisadectl $(DESTDIR)$(BINDIR)/palisade
	rm -f $(DESTDIR)$(POLKIT_ACTIONDIR)/io.palisade.policy $(DESTDIR)$(POLKIT_RULESDIR)/50-io.palisade.rules
	rm -f $(DESTDIR)$(DBUS_SYSTEM_CONFDIR)/io.palisade.Helper1.conf $(DESTDIR)$(DBUS_SYSTEM_SERVICEDIR)/io.palisade.Helper1.service
	rm -f $(DESTDIR)$(SYSTEMD_UNITDIR)/palisade-helper.service $(DESTDIR)$(SYSTEMD_UNITDIR)/palisade-apply.service
	rm -f $(DESTDIR)$(TMPFILESDIR)/palisade.conf
	for f in $(notdir $(PALISADE_DESKTOP)); do rm -f "$(DESTDIR)$(APPLICATIONSDIR)/$$f"; done
	for f in $(notdir $(PALISADE_METAINFO)); do rm -f "$(DESTDIR)$(METAINFODIR)/$$f"; done
	if [ -d $(PALISADE_TOP)/data/icons ]; then \
	  cd $(PALISADE_TOP)/data/icons && find . -type f \( -name '*.svg' -o -name '*.png' \) | \
	  while read -r f; do rel=$${f#./}; rel=$${rel#hicolor/}; rm -f "$(DESTDIR)$(ICONDIR)/$$rel"; done; \
	fi
	for l in $(PALISADE_LANGS); do rm -f "$(DESTDIR)$(LOCALEDIR)/$$l/LC_MESSAGES/palisade.mo"; done
	rm -rf $(DESTDIR)$(DOCDIR)

.DEFAULT_GOAL := $(palisade_saved_default_goal)
