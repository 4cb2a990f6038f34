# The README's commands. Everything goes through CMake into build/.
BUILD ?= build
TYPE  ?= RelWithDebInfo
CONF  ?= conf/quickstart.conf
JOBS  ?= $(shell nproc)

.PHONY: all deps build run test test-asan test-tsan bench install clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) -DEMM_WERROR=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	mkdir -p var mnt
	$(BUILD)/bin/emmd -f -c $(CONF)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Asan -DEMM_WERROR=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j 1

test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Tsan -DEMM_WERROR=ON
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j 1 -R 'unit/'

# bench/all.sh: every bench script, tables and SVG plots into bench/plots
# (BENCH_SCRIPTS="policy" etc. for a subset; see bench/README.md)
bench: build
	@scripts/install-deps.sh --bench
	bench/all.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-tsan
