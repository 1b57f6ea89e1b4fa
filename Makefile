# vmcheck - host controller and guest agent.
#
#   make            build/vmcheck and build/vmcheck-agent (static), and the
#                   aarch64 agent build/aarch64/vmcheck-agent (cross-built;
#                   its arm64 musl and protobuf-c fetched from Debian's archive)
#   make native     build/vmcheck and build/vmcheck-agent only (the packages)
#   make test       install missing packages (as root), build, run every test
#   make run        install missing packages (as root), build, build the
#                   embedded guest, run the sanity suite on it (RUN_ARGS=...)
#   make guest      the embedded test guest in build/guest (GUEST_ARGS=...);
#                   ARCH=aarch64: the arm64 guest in build/guest-aarch64
#   make liar       build/vmcheck-agent-liar, the agent with one lie (tests only)
#   make hostile    build/vmcheck-hostile, a fake agent attacking the host (tests only)
#   make bench      vmcheck-agent against qemu-ga, one table; a 512 GiB guest's boot,
#                   then make fuzz-long
#   make bench-backends  the suite through QMP and libvirt, latencies side by side
#   make fuzz       every libFuzzer harness (tests/fuzz) for FUZZ_SECONDS each
#                   (default 30), one per core at once, then executions and
#                   coverage per harness
#   make fuzz-long  every harness to FUZZ_RUNS executions (10 million; make
#                   bench runs it)
#   make test-asan  vmcheck built with ASan and UBSan through the integration
#                   tests in ASAN_TESTS (test-suite test-faults): no report allowed
#   make format     clang-format 14 over the C sources; check-format only checks
#   make install    DESTDIR, PREFIX (/usr/local), BINDIR, SBINDIR, MANDIR, ...; uninstall
#   make deb        vmcheck and vmcheck-agent .debs in build/deb, then lintian;
#                   ARCH=aarch64: the arm64 vmcheck-agent .deb in build/deb-aarch64
#   make install-agent  the agent's part of make install only (ARCH= its binary)
#   make rpm        the .rpms in build/rpm (RPM_STUB_MACROS=1 on Debian)
#   make test-packaging  install, man pages, completion, deb, rpm (about 2 min)
#   make image      a Debian disk image with the agent's .deb in build/image (root)
#   make test-image the suite on that image guest (2-4 min once the image is built)

VERSION   := 0.1.0
B         := build
CC        ?= gcc
PKG_CONFIG ?= pkg-config
PROTOC_C  ?= protoc-c
MUSL_CC   ?= musl-gcc
CLANG     ?= clang
FUZZ_SECONDS ?= 30
# make test runs each fuzzer this long (three, two at once on two cores: 40 s).
FUZZ_TEST_SECONDS ?= 20
# The guest architecture of make guest and make deb: x86_64 or aarch64.
ARCH      ?= x86_64

WARN   := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
          -Wformat=2 -Wno-format-nonliteral -Wshadow -Wno-unused-parameter
CSTD   := -std=gnu11 -D_GNU_SOURCE -DVMC_VERSION='"$(VERSION)"'
OPT    ?= -O2 -g
INC    := -Icommon -Iguest -Ihost -I$(B)/gen

HOST_PKGS := libprotobuf-c json-c libvirt libvirt-qemu libxml-2.0 libssh
HOST_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(HOST_PKGS) 2>/dev/null)
HOST_LIBS   := $(shell $(PKG_CONFIG) --libs $(HOST_PKGS) 2>/dev/null) -lpthread
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags cunit 2>/dev/null)
TEST_LIBS   := $(shell $(PKG_CONFIG) --libs cunit 2>/dev/null)
# The static agent links Debian's libprotobuf-c.a into a musl binary.
PBC_LIBDIR  := $(shell $(PKG_CONFIG) --variable=libdir libprotobuf-c 2>/dev/null)
PBC_INCDIR  := $(shell $(PKG_CONFIG) --variable=includedir libprotobuf-c 2>/dev/null)

GEN        := $(B)/gen/vmcheck.pb-c.c
GEN_H      := $(B)/gen/vmcheck.pb-c.h
COMMON_SRC := $(wildcard common/*.c) $(GEN)
GUEST_LIB  := $(filter-out guest/vmcheck-agent.c,$(wildcard guest/*.c))
HOST_LIB   := $(filter-out host/main.c,$(wildcard host/*.c))
UNIT_SRC   := $(wildcard tests/unit/*.c)
LIAR_SRC   := tests/liar/liar.c tests/liar/liar-main.c

obj = $(patsubst %.c,$(B)/$(1)/%.o,$(notdir $(2)))

AGENT_OBJ := $(call obj,agent,$(COMMON_SRC) $(GUEST_LIB) guest/vmcheck-agent.c)
HOST_OBJ  := $(call obj,host,$(COMMON_SRC) $(HOST_LIB) host/main.c)
UNIT_OBJ  := $(call obj,unit,$(COMMON_SRC) $(GUEST_LIB) $(HOST_LIB) $(UNIT_SRC) tests/liar/liar.c)
LIAR_OBJ  := $(call obj,agent,$(COMMON_SRC) $(GUEST_LIB) $(LIAR_SRC))

vpath %.c common guest host tests/unit tests/liar tests/fuzz $(B)/gen

Q := @
ifeq ($(V),1)
Q :=
endif

.PHONY: all native test unit integration run bench bench-backends fuzz fuzz-long test-asan \
	deps clean format check-format guest liar hostile test-arm test-all
all: native $(B)/aarch64/vmcheck-agent

# What the packages build: the programs of this machine's architecture, no
# cross compiler needed.
native: $(B)/vmcheck $(B)/vmcheck-agent

# ARCH picks what make guest, make deb and make install-agent build: their
# agent, Debian architecture and output directory.
ifeq ($(ARCH),aarch64)
ARCH_AGENT := $(B)/aarch64/vmcheck-agent
DEB_ARCH   := arm64
KIT_OUT    := $(B)/guest-aarch64
else
ARCH_AGENT := $(B)/vmcheck-agent
DEB_ARCH   := amd64
KIT_OUT    := $(B)/guest
endif
.PHONY: arch-ok
arch-ok:
	@case "$(ARCH)" in x86_64|aarch64) ;; *) echo "ARCH=$(ARCH): x86_64 or aarch64" >&2; \
		exit 1 ;; esac

$(GEN) $(GEN_H): proto/vmcheck.proto
	@mkdir -p $(B)/gen
	$(PROTOC_C) --proto_path=proto --c_out=$(B)/gen proto/vmcheck.proto

# musl has no kernel or protobuf-c headers of its own: borrow the system's.
$(B)/musl-inc/.stamp:
	@mkdir -p $(B)/musl-inc
	ln -sfn /usr/include/linux $(B)/musl-inc/linux
	ln -sfn /usr/include/asm-generic $(B)/musl-inc/asm-generic
	ln -sfn /usr/include/$(shell $(CC) -dumpmachine)/asm $(B)/musl-inc/asm
	ln -sfn $(PBC_INCDIR)/protobuf-c $(B)/musl-inc/protobuf-c
	@touch $@

$(B)/agent/%.o: %.c $(GEN_H) $(B)/musl-inc/.stamp
	@mkdir -p $(B)/agent
	@echo "  CC      $@"
	$(Q)$(MUSL_CC) $(CSTD) $(WARN) $(OPT) -Os $(INC) -isystem $(B)/musl-inc -MMD -c -o $@ $<

$(B)/vmcheck-agent: $(AGENT_OBJ)
	$(MUSL_CC) -static -Os -o $@ $^ $(PBC_LIBDIR)/libprotobuf-c.a -lpthread
	strip -o $@.stripped $@ && mv $@.stripped $@

# The aarch64 agent, as static and as small as the x86_64 one: Debian's cross
# gcc driven the way musl-gcc drives gcc (musl's own specs file, its paths
# moved into the sysroot), against arm64 musl and Debian's arm64
# libprotobuf-c.a. Nothing of arm64 is installed: packaging/fetch-debs
# fetches the packages into A64_CACHE and unpacks them into the sysroot.
A64_CC      ?= aarch64-linux-gnu-gcc
A64_STRIP   ?= aarch64-linux-gnu-strip
A64         := $(B)/aarch64
A64_CACHE   ?= $(A64)/cache
A64_SYSROOT := $(A64)/sysroot
A64_PKGS    := musl musl-dev libprotobuf-c-dev libprotobuf-c1
A64_OBJ     := $(call obj,aarch64/agent,$(COMMON_SRC) $(GUEST_LIB) guest/vmcheck-agent.c)
A64_SPECS   := $(A64)/musl-gcc.specs
# Kernel headers from linux-libc-dev-arm64-cross (packaging/install-deps).
A64_KINC    := /usr/aarch64-linux-gnu/include

# $(A64)/sysroot.debs: the packages it holds (Built-Using of the arm64 .deb).
$(A64_SYSROOT)/.stamp: packaging/fetch-debs
	@command -v $(A64_CC) >/dev/null || { echo "the aarch64 agent: no $(A64_CC)" \
		"(packaging/install-deps: gcc-aarch64-linux-gnu)" >&2; exit 1; }
	@[ -d $(A64_KINC)/asm ] || { echo "the aarch64 agent: no $(A64_KINC)/asm" \
		"(packaging/install-deps: linux-libc-dev-arm64-cross)" >&2; exit 1; }
	rm -rf $(A64_SYSROOT) && mkdir -p $(A64)
	packaging/fetch-debs --arch arm64 --cache $(A64_CACHE) --extract $(A64_SYSROOT) \
		$(A64_PKGS) > $(A64)/sysroot.debs
	@touch $@

$(A64_SPECS): $(A64_SYSROOT)/.stamp
	sed -e 's|/usr/lib/aarch64-linux-musl|$(abspath $(A64_SYSROOT))&|g' \
		-e 's|/usr/include/aarch64-linux-musl|$(abspath $(A64_SYSROOT))&|g' \
		$(A64_SYSROOT)/usr/lib/aarch64-linux-musl/musl-gcc.specs > $@

$(A64)/musl-inc/.stamp: $(A64_SYSROOT)/.stamp
	@mkdir -p $(A64)/musl-inc
	ln -sfn $(A64_KINC)/linux $(A64)/musl-inc/linux
	ln -sfn $(A64_KINC)/asm-generic $(A64)/musl-inc/asm-generic
	ln -sfn $(A64_KINC)/asm $(A64)/musl-inc/asm
	ln -sfn $(abspath $(A64_SYSROOT))/usr/include/protobuf-c $(A64)/musl-inc/protobuf-c
	@touch $@

$(A64)/agent/%.o: %.c $(GEN_H) $(A64_SPECS) $(A64)/musl-inc/.stamp
	@mkdir -p $(A64)/agent
	@echo "  CC      $@"
	$(Q)$(A64_CC) -specs $(A64_SPECS) $(CSTD) $(WARN) $(OPT) -Os $(INC) \
		-isystem $(A64)/musl-inc -MMD -c -o $@ $<

$(A64)/vmcheck-agent: $(A64_OBJ)
	$(A64_CC) -specs $(A64_SPECS) -static -Os -o $@ $^ \
		$(A64_SYSROOT)/usr/lib/aarch64-linux-gnu/libprotobuf-c.a -lpthread
	$(A64_STRIP) -o $@.stripped $@ && mv $@.stripped $@

# The agent telling one lie (tests/liar), for tests of the host's judgement:
# the same static build, never part of all, install or the packages.
$(B)/vmcheck-agent-liar: $(LIAR_OBJ)
	$(MUSL_CC) -static -Os -o $@ $^ $(PBC_LIBDIR)/libprotobuf-c.a -lpthread
	strip -o $@.stripped $@ && mv $@.stripped $@

liar: $(B)/vmcheck-agent-liar

# A fake agent attacking the host through the protocol (tests/hostile), for
# tests of the host's bounds: built for this machine, never part of all.
HOSTILE_OBJ := $(call obj,host,common/frame.c common/pb.c $(GEN))
$(B)/vmcheck-hostile: tests/hostile/hostile.c $(HOSTILE_OBJ)
	$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -o $@ $^ $(HOST_LIBS)

hostile: $(B)/vmcheck-hostile

$(B)/host/%.o: %.c $(GEN_H)
	@mkdir -p $(B)/host
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -MMD -c -o $@ $<

$(B)/vmcheck: $(HOST_OBJ)
	$(CC) -o $@ $^ $(HOST_LIBS)

# Unit tests: glibc, ASan + UBSan, every module but the two mains.
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
$(B)/unit/%.o: %.c $(GEN_H)
	@mkdir -p $(B)/unit
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) -Itests/unit -Itests/liar $(HOST_CFLAGS) $(TEST_CFLAGS) -MMD -c -o $@ $<

$(B)/unit-tests: $(UNIT_OBJ)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS) $(TEST_LIBS)

unit: $(B)/unit-tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=tests/unit/lsan.supp,print_suppressions=0 \
		$(B)/unit-tests --junit $(B)/junit-unit.xml --fixtures tests/fixtures

# libFuzzer harnesses (tests/fuzz/fuzz-NAME.c, seeds in tests/fuzz/corpus-NAME):
# frame, the agent's request decoding; agent-client, the host's reading of
# an agent's stream; state, the host's merge and diff of guest States. Each
# links what it calls from the archives of guest and host objects, built by
# clang with ASan and UBSan.
FUZZERS   := frame agent-client state
FUZZ_BINS := $(addprefix $(B)/fuzz-,$(FUZZERS))
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
$(B)/fuzz/%.o: %.c $(GEN_H)
	@mkdir -p $(B)/fuzz
	@echo "  CC      $@"
	$(Q)$(CLANG) $(CSTD) -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(INC) $(HOST_CFLAGS) \
		-MMD -c -o $@ $<

$(B)/fuzz/libguest.a: $(call obj,fuzz,$(COMMON_SRC) $(GUEST_LIB))
	rm -f $@ && ar rcs $@ $^
$(B)/fuzz/libhost.a: $(call obj,fuzz,$(COMMON_SRC) $(HOST_LIB))
	rm -f $@ && ar rcs $@ $^

$(B)/fuzz-frame: $(B)/fuzz/fuzz-frame.o $(B)/fuzz/libguest.a
$(B)/fuzz-agent-client $(B)/fuzz-state: $(B)/fuzz-%: $(B)/fuzz/fuzz-%.o $(B)/fuzz/libhost.a
$(FUZZ_BINS):
	$(CLANG) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(HOST_LIBS)

# Every harness for FUZZ_SECONDS, one per core at once (FUZZ_JOBS), on the seeds and what
# earlier runs found ($(B)/fuzz-corpus/NAME); a table of executions and
# coverage at the end. fuzz-long: each to FUZZ_RUNS executions instead.
FUZZ_RUNS ?= 10000000
fuzz: $(FUZZ_BINS)
	tests/fuzz/run --seconds $(FUZZ_SECONDS) $(B) $(FUZZERS)

fuzz-long: $(FUZZ_BINS)
	tests/fuzz/run --runs $(FUZZ_RUNS) $(B) $(FUZZERS)

# The QEMU launcher and QMP backend against a real QEMU (tests/integration/test-launcher).
HV_SMOKE_OBJ := $(call obj,host,$(COMMON_SRC) host/error.c host/hv.c host/arch.c host/ledger.c host/hv-qmp.c host/qemu.c \
		host/qemu-proc.c host/accel.c host/hv-qmp-client.c host/agent-client.c host/bounds.c host/escape.c \
		host/agent-unix.c host/agent-exec.c host/agent-ssh.c host/agent-libvirt.c \
		host/libvirt-shared.c)
$(B)/hv-smoke: tests/integration/hv-smoke.c $(HV_SMOKE_OBJ)
	$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -o $@ $^ $(HOST_LIBS)

# The libvirt backend against a real libvirtd (tests/integration/test-libvirt).
LV_SMOKE_OBJ := $(call obj,host,$(COMMON_SRC) host/error.c host/hv.c host/arch.c host/hv-libvirt.c host/hv-qmp.c host/ledger.c \
		host/hv-libvirt-xml.c host/libvirt-shared.c host/qemu.c host/qemu-proc.c host/accel.c host/hv-qmp-client.c \
		host/agent-client.c host/bounds.c host/escape.c host/agent-unix.c host/agent-exec.c host/agent-ssh.c \
		host/agent-libvirt.c)
$(B)/lv-smoke: tests/integration/lv-smoke.c $(LV_SMOKE_OBJ)
	$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -o $@ $^ $(HOST_LIBS)

# The embedded test guest (Debian kernel + busybox + the agent), rebuilt
# only when an input changes. GUEST_ARGS="--kernel DEB --modules-from DIR".
# ARCH=aarch64: the arm64 guest, with the aarch64 agent, in $(B)/guest-aarch64.
guest: $(ARCH_AGENT) arch-ok
	packaging/guest/build-guest --arch $(DEB_ARCH) --agent $(ARCH_AGENT) --out $(KIT_OUT) \
		$(GUEST_ARGS)

integration: all guest $(B)/hv-smoke $(B)/lv-smoke $(B)/vmcheck-agent-liar $(B)/vmcheck-hostile
	tests/integration/run-all

# Longer than make test's 30 minutes allow: the aarch64 guest (launched,
# attached, through libvirt), and test-packaging with the arm64 .deb that
# make test leaves out; test-all: everything at once.
test-arm: deps
	$(MAKE) all
	tests/integration/run-all test-aarch64 test-aarch64-libvirt test-packaging

test-all: test
	$(MAKE) test-arm
	$(MAKE) test-image

# The host controller built with ASan and UBSan ($(B)/asan/vmcheck, from the
# unit tests' objects: the same sources and flags) running integration
# tests (tests/integration/run-asan): any sanitizer report fails the run.
# ASAN_TESTS: the tests it runs; one not in the tree is skipped.
# ASAN_SUITE_PARTS: the parts of test-suite it runs (empty: all): the whole
# suite, the others left out for time (test-faults kills QEMU mid-check
# too). make test runs test-faults only here.
ASAN_TESTS ?= test-suite test-faults
ASAN_SUITE_PARTS ?= full
# make test's plain integration run leaves test-suite's whole-suite part to
# test-asan, which runs it with the sanitized build: once is enough.
TEST_SUITE_PARTS ?= attach killed no_cpu no_s3
$(B)/asan/vmcheck: $(call obj,unit,$(COMMON_SRC) $(HOST_LIB) host/main.c)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS)

test-asan: native guest $(B)/asan/vmcheck
	VMC_SUITE_PARTS="$(ASAN_SUITE_PARTS)" tests/integration/run-asan $(B) $(ASAN_TESTS)

deps:
	packaging/install-deps

test: deps
	$(MAKE) check-format
	$(MAKE) all guest $(B)/unit-tests $(FUZZ_BINS) $(B)/hv-smoke $(B)/lv-smoke \
		$(B)/vmcheck-agent-liar $(B)/vmcheck-hostile $(B)/asan/vmcheck
	$(MAKE) unit
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
	VMC_SUITE_PARTS="$(TEST_SUITE_PARTS)" VMC_SKIP_ARM64_DEB=1 $(MAKE) integration
	$(MAKE) test-asan

# The main job: the whole sanity suite on the embedded guest, with reports.
RUN_ARGS ?=
run: deps
	$(MAKE) all guest
	$(B)/vmcheck run --junit $(B)/junit-run.xml --json $(B)/run.jsonl $(RUN_ARGS)

# A host-side client; links only the framing and protobuf glue.
$(B)/bench-agent: tests/bench/bench-agent.c common/frame.c common/pb.c $(GEN) $(GEN_H)
	$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -o $@ \
		tests/bench/bench-agent.c common/frame.c common/pb.c $(GEN) $(HOST_LIBS)

bench: deps
	$(MAKE) all $(B)/bench-agent
	tests/bench/run $(B)
	tests/bench/bigmem $(B) 512G
	$(MAKE) fuzz-long

# REPEAT: hotplug cycles per check in each backend's run (default 10).
bench-backends: deps
	$(MAKE) all guest
	tests/bench/backends $(B) $(REPEAT)

# ---- install, packages
.PHONY: install install-agent uninstall deb deb-changelog deb-x86_64 deb-aarch64 rpm \
	test-packaging FORCE
# make install [DESTDIR=...] [PREFIX=/usr/local] [BINDIR= SBINDIR= MANDIR=
# GUESTKITDIR= SYSTEMDUNITDIR= UDEVRULESDIR= BASHCOMPDIR=]. The unit, rule and
# completion dirs are where this system's systemd, udev and bash-completion
# look (their .pc files); without those, PREFIX paths they also search.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
GUESTKITDIR ?= $(DATADIR)/vmcheck/guest
pc_var = $(shell $(PKG_CONFIG) --variable=$(1) $(2) 2>/dev/null)
SYSTEMDUNITDIR ?= $(or $(call pc_var,systemdsystemunitdir,systemd),$(PREFIX)/lib/systemd/system)
UDEVRULESDIR   ?= $(or $(addsuffix /rules.d,$(call pc_var,udevdir,udev)),$(PREFIX)/lib/udev/rules.d)
BASHCOMPDIR    ?= $(or $(call pc_var,completionsdir,bash-completion),$(DATADIR)/bash-completion/completions)

# The installed vmcheck takes the guest kit from GUESTKITDIR, a source-tree
# build from build/guest: only cmd-run.o differs (-DGUEST_DIR). The stamps
# $(B)/inst/guest-dir and $(B)/inst/dirs change whenever what they hold does,
# so nothing installed is stale.
INST_VARS  = $(VERSION) $(SBINDIR) $(GUESTKITDIR) $(SYSTEMDUNITDIR) $(UDEVRULESDIR)
INST_GEN  := $(B)/inst/vmcheck.1 $(B)/inst/vmcheck-agent.8 $(B)/inst/vmcheck-agent.service
# What make guest leaves besides the kit: its download cache and fingerprint.
# Installed, every user may read the kit (its ssh/ test keys too, as the
# packages' tools would make them anyway): vmcheck runs as any user.
KIT_SKIP  := --exclude=./cache --exclude=./.inputs

stamp = @mkdir -p $(@D); echo '$(1)' | cmp -s - $@ || echo '$(1)' > $@
$(B)/inst/dirs: FORCE
	$(call stamp,$(INST_VARS))
$(B)/inst/guest-dir: FORCE
	$(call stamp,$(GUESTKITDIR))

$(B)/inst/cmd-run.o: host/cmd-run.c $(GEN_H) $(B)/inst/guest-dir
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -DGUEST_DIR='"$(GUESTKITDIR)"' \
		-MMD -c -o $@ $<

$(B)/inst/vmcheck: $(filter-out $(B)/host/cmd-run.o,$(HOST_OBJ)) $(B)/inst/cmd-run.o
	$(CC) $(LDFLAGS) -o $@ $^ $(HOST_LIBS)

inst_subst = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
	-e 's|@GUESTKITDIR@|$(GUESTKITDIR)|g' -e 's|@SYSTEMDUNITDIR@|$(SYSTEMDUNITDIR)|g' \
	-e 's|@UDEVRULESDIR@|$(UDEVRULESDIR)|g' $< > $@
$(B)/inst/vmcheck.1: packaging/man/vmcheck.1.in $(B)/inst/dirs
	$(inst_subst)
$(B)/inst/vmcheck-agent.8: packaging/man/vmcheck-agent.8.in $(B)/inst/dirs
	$(inst_subst)
$(B)/inst/vmcheck-agent.service: packaging/systemd/vmcheck-agent.service.in $(B)/inst/dirs
	$(inst_subst)

# The agent, its man page, completion, unit and rule: make install's agent
# part, and all the arm64 package holds (ARCH=aarch64: the aarch64 agent).
install-agent: $(ARCH_AGENT) $(B)/inst/vmcheck-agent.8 $(B)/inst/vmcheck-agent.service arch-ok
	install -D -m 755 $(ARCH_AGENT) $(DESTDIR)$(SBINDIR)/vmcheck-agent
	install -D -m 644 $(B)/inst/vmcheck-agent.8 $(DESTDIR)$(MANDIR)/man8/vmcheck-agent.8
	install -D -m 644 packaging/completion/vmcheck $(DESTDIR)$(BASHCOMPDIR)/vmcheck-agent
	install -D -m 644 $(B)/inst/vmcheck-agent.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/vmcheck-agent.service
	install -D -m 644 packaging/udev/60-vmcheck-agent.rules \
		$(DESTDIR)$(UDEVRULESDIR)/60-vmcheck-agent.rules

install: install-agent $(B)/inst/vmcheck $(B)/inst/vmcheck.1
	install -D -m 755 $(B)/inst/vmcheck $(DESTDIR)$(BINDIR)/vmcheck
	install -D -m 644 $(B)/inst/vmcheck.1 $(DESTDIR)$(MANDIR)/man1/vmcheck.1
	install -D -m 644 packaging/completion/vmcheck $(DESTDIR)$(BASHCOMPDIR)/vmcheck
	@if [ -f $(B)/guest/vmlinuz ]; then \
		echo "install: guest kit $(B)/guest -> $(DESTDIR)$(GUESTKITDIR)"; \
		mkdir -p $(DESTDIR)$(GUESTKITDIR) && \
		tar -C $(B)/guest $(KIT_SKIP) -cf - . | tar -C $(DESTDIR)$(GUESTKITDIR) --no-same-owner -xf - && \
		chmod -R u=rwX,go=rX $(DESTDIR)$(GUESTKITDIR); \
	else \
		echo "install: no guest kit in $(B)/guest (make guest): not installed;" \
			"vmcheck run will need --kernel/--initrd, --qmp or --libvirt"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/vmcheck $(DESTDIR)$(SBINDIR)/vmcheck-agent \
		$(DESTDIR)$(MANDIR)/man1/vmcheck.1 $(DESTDIR)$(MANDIR)/man8/vmcheck-agent.8 \
		$(DESTDIR)$(BASHCOMPDIR)/vmcheck $(DESTDIR)$(BASHCOMPDIR)/vmcheck-agent \
		$(DESTDIR)$(SYSTEMDUNITDIR)/vmcheck-agent.service \
		$(DESTDIR)$(UDEVRULESDIR)/60-vmcheck-agent.rules
	rm -rf $(DESTDIR)$(GUESTKITDIR)
	rmdir $(DESTDIR)$(DATADIR)/vmcheck 2>/dev/null || true

# Packages are built from a copy of the working tree in $(B)/deb or $(B)/rpm
# (tracked and untracked files; .gitignore'd ones, the build dirs, left out):
# what the developer sees, without a clean tree and without touching any
# build dir but $(B). The guest kit's downloads are kept in $(B)/guest-cache.
PKG_SRC = $(abspath $(B))/$(1)/vmcheck-$(VERSION)
define copy_tree
	rm -rf $(abspath $(B))/$(1) && mkdir -p $(call PKG_SRC,$(1))
	git ls-files -z --cached --others --exclude-standard | \
		xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
		tar --null -T - -cf - | tar -C $(call PKG_SRC,$(1)) -xf -
endef
# The package build runs its own make: none of this one's variables (B=...)
# may leak into it through MAKEFLAGS.
PKG_ENV = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	GUEST_ARGS="--cache $(abspath $(B))/guest-cache $(GUEST_ARGS)"

# vmcheck and vmcheck-agent .debs in $(B)/deb/, then lintian (errors fail).
# ARCH=aarch64: the arm64 vmcheck-agent .deb in $(B)/deb-aarch64/.
deb: arch-ok deb-$(ARCH)

deb-changelog:
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version); \
	[ "$$v" = "$(VERSION)" ] || { echo "deb: packaging/debian/changelog is at $$v," \
		"the Makefile at $(VERSION): add a changelog entry (dch -v $(VERSION))" >&2; exit 1; }

deb-x86_64: deb-changelog
	$(call copy_tree,deb)
	cp -r packaging/debian $(call PKG_SRC,deb)/debian
	cd $(call PKG_SRC,deb) && $(PKG_ENV) dpkg-buildpackage -us -uc -b
	lintian --fail-on error --info $(abspath $(B))/deb/vmcheck_$(VERSION)_*.changes

# A cross build for arm64 of the architecture-dependent packages, which is
# vmcheck-agent alone (vmcheck is amd64): debian/rules builds it with the
# Makefile's cross rule. The build dependencies are this host's (the cross
# compiler, packaging/install-deps), not arm64 ones: -d, no check.
# A64_CACHE is shared, so the arm64 packages are fetched once. Nothing runs
# tests in a package build (nocheck: no warning that they cannot run here).
deb-aarch64: deb-changelog
	$(call copy_tree,deb-aarch64)
	cp -r packaging/debian $(call PKG_SRC,deb-aarch64)/debian
	cd $(call PKG_SRC,deb-aarch64) && $(PKG_ENV) A64_CACHE=$(abspath $(A64_CACHE)) \
		DEB_BUILD_OPTIONS="nocheck $(DEB_BUILD_OPTIONS)" dpkg-buildpackage -us -uc -B -aarm64 -d
	lintian --fail-on error --info $(abspath $(B))/deb-aarch64/vmcheck_$(VERSION)_arm64.changes

# The .rpms in $(B)/rpm/RPMS, with the guest kit where apt-get can fetch its
# Debian packages. Needs the systemd RPM macros (systemd-rpm-macros); a
# Debian host has none: RPM_STUB_MACROS=1 takes packaging/rpm/macros.systemd-stub
# and skips the BuildRequires check, for a test build of the spec only.
RPMBUILD_ARGS ?= $(if $(shell command -v apt-get),--with guest_kit)
rpm:
	@v=$$(sed -n 's/^Version:[[:space:]]*//p' packaging/rpm/vmcheck.spec); \
	[ "$$v" = "$(VERSION)" ] || { echo "rpm: packaging/rpm/vmcheck.spec is at $$v," \
		"the Makefile at $(VERSION)" >&2; exit 1; }
	@command -v rpmbuild >/dev/null || { echo "rpm: no rpmbuild (apt-get install rpm)" >&2; exit 1; }
	@if [ "$$(rpm --eval '%{?systemd_post:yes}')" != yes ] && [ "$(RPM_STUB_MACROS)" != 1 ]; then \
		echo "rpm: this host has no systemd RPM macros (%systemd_post, %_unitdir):" \
			"install systemd-rpm-macros (RHEL, Oracle Linux, Fedora), or for a test" \
			"build of the spec on Debian: make rpm RPM_STUB_MACROS=1" >&2; exit 1; fi
	$(call copy_tree,rpm)
	mkdir -p $(abspath $(B))/rpm/SOURCES
	tar -C $(abspath $(B))/rpm -czf $(abspath $(B))/rpm/SOURCES/vmcheck-$(VERSION).tar.gz \
		vmcheck-$(VERSION)
	$(PKG_ENV) rpmbuild -ba $(RPMBUILD_ARGS) --define '_topdir $(abspath $(B))/rpm' \
		$(if $(filter 1,$(RPM_STUB_MACROS)),--nodeps --load packaging/rpm/macros.systemd-stub) \
		packaging/rpm/vmcheck.spec
	rpmlint -r packaging/rpm/rpmlint-filters packaging/rpm/vmcheck.spec \
		$(abspath $(B))/rpm/RPMS/*/*.rpm \
		$(abspath $(B))/rpm/SRPMS/*.rpm

# make install, man pages, completion, unit and rule, make deb, make rpm
# (VMC_SKIP_PACKAGES=1: all but the packages, about 10 s).
test-packaging:
	B=$(B) tests/integration/test-packaging

# ---- a Debian (systemd) disk image with the vmcheck-agent .deb, for
# vmcheck run --image: $(B)/image/{rootfs.img,vmlinuz,initrd.img,cmdline}.
# Root (debootstrap, chroot); debootstrap's output is cached in IMAGE_CACHE.
# The .deb is rebuilt (make deb) when the agent or its unit or rule changed.
IMAGE_CACHE ?= /var/cache/vmcheck/image
IMAGE_DEB := $(B)/deb/vmcheck-agent_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb
.PHONY: image test-image
$(IMAGE_DEB): $(B)/vmcheck-agent packaging/systemd/vmcheck-agent.service.in \
		packaging/udev/60-vmcheck-agent.rules packaging/debian/changelog
	$(MAKE) deb

image: $(IMAGE_DEB)
	packaging/image/build-image --deb $(IMAGE_DEB) --out $(B)/image --cache $(IMAGE_CACHE)

test-image: all
	B=$(B) tests/integration/test-image
	B=$(B) tests/integration/test-remote image

FORCE:

# The C the house style covers; clang-format 14 (Debian 12's) is pinned: other
# versions place some breaks differently.
CLANG_FORMAT ?= clang-format-14
FORMAT_SRC = $(sort $(wildcard common/*.[ch] guest/*.[ch] host/*.[ch] tests/unit/*.[ch] \
	     tests/liar/*.[ch] tests/hostile/*.c tests/fuzz/*.c tests/integration/*.c tests/bench/*.c))

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRC)

check-format:
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_SRC) && \
		echo "check-format: $(words $(FORMAT_SRC)) files as .clang-format says"

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*/*.d $(B)/*/*/*.d)
