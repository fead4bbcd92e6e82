# emporium: `make run` and `make test` do all setup on a fresh Debian machine.
BUILD ?= build
JOBS ?= 2
export CCACHE_DIR ?= $(CURDIR)/.var/ccache

.PHONY: all deps build run cluster test bench bench-scale fuzz clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

run: build
	scripts/run.sh

cluster: build
	scripts/cluster.sh

test: build
	scripts/test.sh

bench: build
	bench/run.sh

bench-scale: build
	bench/scale.sh

fuzz: deps
	scripts/fuzz.sh

clean:
	rm -rf $(BUILD) build-fuzz
