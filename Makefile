# One Makefile for the whole pool: poold (master), xe (CLI), tests, bench.
#   make            build bin/poold bin/xe
#   make check      unit + integration tests (installs deps first when root)
#   make bench      benchmarks (tests/bench)
#   make demo       a local pool doing real work
#   make demo-ha    HA: a host dies, its VMs come back on the others
#   make demo-upgrade  a rolling pool upgrade, host by host, no VM stopped
#   make SAN=1 ...  the same under AddressSanitizer + UBSan
#   make install    PREFIX=/usr/local DESTDIR= SYSCONFDIR=/etc (and make uninstall)

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
# pkg-config module:Debian package it comes in
PKG_DEBS := openssl:libssl-dev libevent:libevent-dev libevent_openssl:libevent-dev \
	libevent_pthreads:libevent-dev libcurl:libcurl4-openssl-dev jansson:libjansson-dev \
	sqlite3:libsqlite3-dev yaml-0.1:libyaml-dev libzstd:libzstd-dev expat:libexpat1-dev
PKGS    := $(foreach p,$(PKG_DEBS),$(firstword $(subst :, ,$(p))))
DEPS_APT := build-essential pkg-config $(sort $(foreach p,$(PKG_DEBS),$(lastword $(subst :, ,$(p))))) \
	libcmocka-dev python3 sqlite3 valgrind libxen-dev iproute2 groff-base
# the test with Xen Orchestra's xen-api client: Debian's packages where node and npm are missing
DEPS_CMDS := node:nodejs npm:npm

ifeq ($(SAN),1)
BUILD   := build/san
BINDIR  := build/san/bin
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1
else
BUILD   := build/rel
BINDIR  := bin
SANFLAGS :=
OPT     := -O2
endif

# Flags come from pkg-config, so they are computed only in a make that
# compiles. deps, clean, check and demo compile nothing themselves: check and
# demo run `make deps`, then a new make for the build, which computes the
# flags once the libraries exist (a fresh machine's first run).
NOBUILD_GOALS := deps clean check demo demo-ha demo-upgrade uninstall
BUILDING := $(if $(MAKECMDGOALS),$(filter-out $(NOBUILD_GOALS),$(MAKECMDGOALS)),all)
ifneq ($(BUILDING),)
# unit tests also need cmocka
NEED_DEBS := $(PKG_DEBS) $(if $(filter unit $(BUILD)/tests/%,$(BUILDING)),cmocka:libcmocka-dev)
MISSING := $(shell pkg-config --exists $(foreach p,$(NEED_DEBS),$(firstword $(subst :, ,$(p)))) 2>/dev/null && \
	command -v $(firstword $(CC)) >/dev/null || \
	sh scripts/deps.sh --build-check $(firstword $(CC)) $(NEED_DEBS))
ifneq ($(MISSING),)
$(error $(MISSING))
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
endif
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-missing-field-initializers -Ilib -Ipoold -Iagent -Isr -Iha $(PKG_CFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
LDLIBS  += $(PKG_LIBS) -lpthread -lm

# The xen backend (libxl + xenstore) is built whenever libxen-dev is there;
# without it the agent has the sim backend only. xc_get_cpu_featureset
# lives in libxenguest; libxenctrl's pkg-config name is xencontrol.
XEN_PKGS := xenlight xenstore xencontrol xentoollog xenguest
HAVE_XEN := $(if $(BUILDING),$(shell pkg-config --exists $(XEN_PKGS) 2>/dev/null && echo 1))
XEN_ONLY_SRC := agent/backend_xen.c agent/mig_xen.c agent/xen_domcfg.c agent/xen_log.c
ifeq ($(HAVE_XEN),1)
CFLAGS  += -DHAVE_XEN -DLIBXL_API_VERSION=0x041400 $(shell pkg-config --cflags $(XEN_PKGS))
LDLIBS  += $(shell pkg-config --libs $(XEN_PKGS))
XEN_LEFT_OUT :=
# xenctrl.h's public headers use anonymous unions (a GNU extension)
$(BUILD)/agent/backend_xen.o $(BUILD)/ha/fence.o: CFLAGS += -std=gnu11
else
XEN_LEFT_OUT := $(XEN_ONLY_SRC)
ifneq ($(BUILDING),)
$(info xen backend left out: libxen-dev is not installed (pkg-config xenlight not found); the agent has the sim backend only)
endif
endif

# Every object depends on the flags it was built with: a build never mixes
# objects compiled before and after a library (libxen-dev, say) was installed.
FLAGS_STAMP := $(BUILD)/flags
FLAGS_NOW   := $(CC) $(CFLAGS) | $(LDFLAGS) $(LDLIBS)
ifneq ($(BUILDING),)
ifneq ($(FLAGS_NOW),$(file <$(FLAGS_STAMP)))
$(shell mkdir -p $(BUILD))
$(file >$(FLAGS_STAMP),$(FLAGS_NOW))
endif
endif

LIB_SRC   := $(wildcard lib/*.c)
POOLD_SRC := $(filter-out poold/main.c,$(wildcard poold/*.c))
XE_SRC    := $(filter-out cli/xe.c,$(wildcard cli/*.c))
AGENT_SRC := $(filter-out agent/main.c agent/simdom.c $(XEN_LEFT_OUT),$(wildcard agent/*.c)) $(wildcard sr/*.c) $(wildcard ha/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
# fixtures shared by unit tests and benchmarks (tests/lib)
TESTLIB_SRC := $(wildcard tests/lib/*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
POOLD_OBJ := $(POOLD_SRC:%.c=$(BUILD)/%.o)
XE_OBJ    := $(XE_SRC:%.c=$(BUILD)/%.o)
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TESTLIB_OBJ := $(TESTLIB_SRC:tests/lib/%.c=$(BUILD)/testlib/%.o)

BINS := $(BINDIR)/poold $(BINDIR)/xe $(if $(wildcard agent/main.c),$(BINDIR)/pool-agent) \
	$(if $(wildcard agent/simdom.c),$(BINDIR)/pool-simdom)

.PHONY: all deps check unit integration bench demo demo-ha demo-upgrade install clean
all: $(BINS)

$(FLAGS_STAMP):
	@:$(shell mkdir -p $(dir $@))$(file >$@,$(FLAGS_NOW))
$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcommon.a: $(LIB_OBJ)
	@rm -f $@; ar rcs $@ $^
$(BUILD)/libpoold.a: $(POOLD_OBJ)
	@rm -f $@; ar rcs $@ $^
$(TESTLIB_OBJ): $(BUILD)/testlib/%.o: tests/lib/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
$(BUILD)/libtest.a: $(TESTLIB_OBJ)
	@rm -f $@; ar rcs $@ $^
$(BUILD)/libagent.a: $(AGENT_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $(AGENT_OBJ),,$(BUILD)/lib/log.o)

# poold reads and writes the statefile's lease and reads the hosts' words (ha/lease.c, record.c, statefile.c)
$(BUILD)/libha.a: $(patsubst %.c,$(BUILD)/%.o,$(wildcard ha/*.c))
	@rm -f $@; ar rcs $@ $^
$(BINDIR)/poold: $(BUILD)/poold/main.o $(BUILD)/libpoold.a $(BUILD)/libha.a $(BUILD)/libcommon.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/pool-agent: $(BUILD)/agent/main.o $(BUILD)/libagent.a $(BUILD)/libcommon.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/pool-simdom: $(BUILD)/agent/simdom.o $(BUILD)/libcommon.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BINDIR)/xe: $(BUILD)/cli/xe.o $(XE_OBJ) $(BUILD)/libcommon.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each unit test links cmocka, the daemon's modules and lib/.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtest.a $(BUILD)/libpoold.a $(BUILD)/libagent.a $(XE_OBJ) $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icli -Itests/lib $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) -lcmocka $(LDLIBS)

deps:
	@sh scripts/deps.sh $(DEPS_APT) --commands $(DEPS_CMDS)

unit: $(UNIT_BIN)
check: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@BUILD=$(BUILD) SAN=$(SAN) POOLD_BIN=$(CURDIR)/$(BINDIR) bash tests/run-all

BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libtest.a $(BUILD)/libpoold.a $(BUILD)/libagent.a $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/lib $(LDFLAGS) -o $@ $(filter %.c %.o %.a,$^) $(LDLIBS)

bench: all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do BINDIR=$(BINDIR) $$b $(BENCH_ARGS) || exit 1; done
	@for b in tests/bench/*.py; do POOLD_BIN=$(CURDIR)/$(BINDIR) python3 $$b $(BENCH_ARGS) || exit 1; done

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo

# HA failover: a host dies, its VMs come back on the others (scripts/demo-ha)
demo-ha: deps
	@$(MAKE) --no-print-directory all
	@POOLD_BIN=$(CURDIR)/$(BINDIR) python3 scripts/demo-ha

# a rolling pool upgrade: every host upgraded in turn, no VM stopped (scripts/demo-upgrade)
demo-upgrade: deps
	@$(MAKE) --no-print-directory all
	@POOLD_BIN=$(CURDIR)/$(BINDIR) python3 scripts/demo-upgrade

# What a Debian package would lay out: daemons in sbin, xe in bin, the sim
# domain program in libexec/poold (where pool-agent looks for it), systemd
# units, man pages (the two configuration pages generated from the samples
# by scripts/conf2man), xe's bash completion, the samples, and the live
# configuration files under SYSCONFDIR unless they exist already (an
# operator's edits survive a reinstall). State lives in /var/lib/poold and
# /var/lib/pool-agent (the units' StateDirectory=); logs go to the journal.
SYSCONFDIR    ?= /etc
UNITDIR       ?= $(PREFIX)/lib/systemd/system
INST_BIN      := $(DESTDIR)$(PREFIX)/bin
INST_SBIN     := $(DESTDIR)$(PREFIX)/sbin
INST_LIBEXEC  := $(DESTDIR)$(PREFIX)/libexec/poold
INST_MAN      := $(DESTDIR)$(PREFIX)/share/man
INST_SHARE    := $(DESTDIR)$(PREFIX)/share/poold
INST_COMPL    := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
INST_UNITS    := $(DESTDIR)$(UNITDIR)
INST_ETC      := $(DESTDIR)$(SYSCONFDIR)
PKG_OUT       := build/pkg
MAN_PAGES     := man/poold.8 man/pool-agent.8 man/xe.1
MAN_GEN       := $(PKG_OUT)/xapi.conf.5 $(PKG_OUT)/pool-agent.conf.5
UNITS_GEN     := $(PKG_OUT)/poold.service $(PKG_OUT)/pool-agent.service

$(PKG_OUT)/xapi.conf.5: man/xapi.conf.5.in etc/xapi.conf.sample scripts/conf2man
	@mkdir -p $(dir $@)
	sh scripts/conf2man $< etc/xapi.conf.sample > $@
$(PKG_OUT)/pool-agent.conf.5: man/pool-agent.conf.5.in etc/pool-agent.conf.sample scripts/conf2man
	@mkdir -p $(dir $@)
	sh scripts/conf2man $< etc/pool-agent.conf.sample > $@
# the paths in the units follow PREFIX and SYSCONFDIR
$(PKG_OUT)/%.service: pkg/systemd/%.service.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

.PHONY: FORCE uninstall
FORCE:

install: all $(MAN_GEN) $(UNITS_GEN)
	install -d $(INST_BIN) $(INST_SBIN) $(INST_LIBEXEC) $(INST_MAN)/man1 $(INST_MAN)/man5 $(INST_MAN)/man8 \
		$(INST_SHARE) $(INST_COMPL) $(INST_UNITS) $(INST_ETC)/poold
	install -m 0755 $(BINDIR)/poold $(BINDIR)/pool-agent $(INST_SBIN)/
	install -m 0755 $(BINDIR)/xe $(INST_BIN)/
	install -m 0755 $(BINDIR)/pool-simdom $(INST_LIBEXEC)/
	install -m 0644 man/xe.1 $(INST_MAN)/man1/
	install -m 0644 $(MAN_GEN) $(INST_MAN)/man5/
	install -m 0644 man/poold.8 man/pool-agent.8 $(INST_MAN)/man8/
	install -m 0644 pkg/bash-completion/xe $(INST_COMPL)/xe
	install -m 0644 $(UNITS_GEN) $(INST_UNITS)/
	install -m 0644 etc/xapi.conf.sample etc/pool-agent.conf.sample $(INST_SHARE)/
	test -e $(INST_ETC)/poold/xapi.conf || install -m 0644 etc/xapi.conf.sample $(INST_ETC)/poold/xapi.conf
	test -e $(INST_ETC)/pool-agent.conf || install -m 0600 etc/pool-agent.conf.sample $(INST_ETC)/pool-agent.conf

# Everything install put in place but the configuration files under
# SYSCONFDIR and the state directories: the pool outlives its binaries.
uninstall:
	rm -f $(INST_SBIN)/poold $(INST_SBIN)/pool-agent $(INST_BIN)/xe $(INST_LIBEXEC)/pool-simdom \
		$(INST_MAN)/man1/xe.1 $(INST_MAN)/man5/xapi.conf.5 $(INST_MAN)/man5/pool-agent.conf.5 \
		$(INST_MAN)/man8/poold.8 $(INST_MAN)/man8/pool-agent.8 $(INST_COMPL)/xe \
		$(INST_UNITS)/poold.service $(INST_UNITS)/pool-agent.service \
		$(INST_SHARE)/xapi.conf.sample $(INST_SHARE)/pool-agent.conf.sample
	-rmdir $(INST_LIBEXEC) $(INST_SHARE) 2>/dev/null

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
