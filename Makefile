# vmcheck - host controller and guest agent.
#
#   make            build/vmcheck and build/vmcheck-agent (static)
#   make test       install missing packages (as root), build, run every test
#   make run        install missing packages (as root), build, build the
#                   embedded guest, run the sanity suite on it (RUN_ARGS=...)
#   make guest      the embedded test guest in build/guest (GUEST_ARGS=...)
#   make bench      vmcheck-agent against qemu-ga, one table
#   make fuzz       the frame/request fuzzer for FUZZ_SECONDS (default 30)

VERSION   := 0.1.0
B         := build
CC        ?= gcc
PKG_CONFIG ?= pkg-config
PROTOC_C  ?= protoc-c
MUSL_CC   ?= musl-gcc
CLANG     ?= clang
FUZZ_SECONDS ?= 30

WARN   := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
          -Wformat=2 -Wno-format-nonliteral -Wshadow -Wno-unused-parameter
CSTD   := -std=gnu11 -D_GNU_SOURCE -DVMC_VERSION='"$(VERSION)"'
OPT    ?= -O2 -g
INC    := -Icommon -Iguest -Ihost -I$(B)/gen

HOST_PKGS := libprotobuf-c json-c libvirt libxml-2.0
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
GUEST_LIB  := $(filter-out guest/agent-main.c,$(wildcard guest/*.c))
HOST_LIB   := $(filter-out host/main.c,$(wildcard host/*.c))
UNIT_SRC   := $(wildcard tests/unit/*.c)

obj = $(patsubst %.c,$(B)/$(1)/%.o,$(notdir $(2)))

AGENT_OBJ := $(call obj,agent,$(COMMON_SRC) $(GUEST_LIB) guest/agent-main.c)
HOST_OBJ  := $(call obj,host,$(COMMON_SRC) $(HOST_LIB) host/main.c)
UNIT_OBJ  := $(call obj,unit,$(COMMON_SRC) $(GUEST_LIB) $(HOST_LIB) $(UNIT_SRC))

vpath %.c common guest host tests/unit $(B)/gen

Q := @
ifeq ($(V),1)
Q :=
endif

.PHONY: all test unit integration run bench fuzz deps clean format guest
all: $(B)/vmcheck $(B)/vmcheck-agent

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
	$(Q)$(CC) $(CSTD) $(WARN) -O1 -g $(SAN) $(INC) -Itests/unit $(HOST_CFLAGS) $(TEST_CFLAGS) -MMD -c -o $@ $<

$(B)/unit-tests: $(UNIT_OBJ)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS) $(TEST_LIBS)

unit: $(B)/unit-tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=tests/unit/lsan.supp,print_suppressions=0 \
		$(B)/unit-tests --junit $(B)/junit-unit.xml --fixtures tests/fixtures

$(B)/fuzz-frame: tests/fuzz/fuzz-frame.c $(COMMON_SRC) $(GUEST_LIB) $(GEN_H)
	$(CLANG) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined $(INC) $(HOST_CFLAGS) \
		-o $@ tests/fuzz/fuzz-frame.c $(COMMON_SRC) $(GUEST_LIB) $(HOST_LIBS)

fuzz: $(B)/fuzz-frame
	@mkdir -p $(B)/fuzz-corpus
	$(B)/fuzz-frame -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=$(B)/ $(B)/fuzz-corpus tests/fuzz/corpus

# The QEMU launcher and QMP backend against a real QEMU (tests/integration/test-launcher).
HV_SMOKE_OBJ := $(call obj,host,$(COMMON_SRC) host/error.c host/hv.c host/hv-qmp.c host/qemu.c \
		host/qmp.c host/agent-client.c host/agent-unix.c host/agent-exec.c)
$(B)/hv-smoke: tests/integration/hv-smoke.c $(HV_SMOKE_OBJ)
	$(CC) $(CSTD) $(WARN) $(OPT) $(INC) $(HOST_CFLAGS) -o $@ $^ $(HOST_LIBS)

# The embedded test guest (Debian kernel + busybox + the agent), rebuilt
# only when an input changes. GUEST_ARGS="--kernel DEB --modules-from DIR".
guest: $(B)/vmcheck-agent
	packaging/guest/build-guest --agent $(B)/vmcheck-agent --out $(B)/guest $(GUEST_ARGS)

integration: all guest $(B)/hv-smoke
	tests/integration/run-all

deps:
	packaging/install-deps

test: deps
	$(MAKE) all guest $(B)/unit-tests $(B)/fuzz-frame $(B)/hv-smoke
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) integration

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

format:
	clang-format -i common/*.[ch] guest/*.[ch] host/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*/*.d)
