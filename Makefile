# mpo_ros: two commands on a fresh machine.
#
#   make train   set up .venv (first time only), then train on $(TASK) through the ROS 2 nodes
#   make test    set up .venv (first time only), then run the test suite
#
# Setup steps are file targets with stamp files in .venv/, so a second run skips what is done.
# Needs: python3.11 (with venv and headers), cmake >= 3.16, a C/C++ compiler, make.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-print-directory --no-builtin-rules

PYTHON ?= python3.11
VENV ?= .venv
TASK ?= gym:InvertedPendulum-v5
STEPS ?= 10000
SEED ?= 0
OUT ?= runs/ros_inverted_pendulum
TRAIN_ARGS ?=
PYTEST_ARGS ?=
JOBS ?= 2

ROOT := $(CURDIR)
VENV_ABS := $(abspath $(VENV))
VPY := $(VENV)/bin/python
BUILD_DIR := build/interfaces

STAMP_VENV := $(VENV)/.stamp-1-venv
STAMP_DEPS := $(VENV)/.stamp-2-requirements
STAMP_CMAKEFIX := $(VENV)/.stamp-3-cmake-fix
STAMP_IFACES := $(VENV)/.stamp-4-interfaces
STAMP_PKG := $(VENV)/.stamp-5-mpo_ros

IFACE_SRCS := mpo_ros_interfaces/CMakeLists.txt mpo_ros_interfaces/package.xml \
	$(wildcard mpo_ros_interfaces/msg/*.msg mpo_ros_interfaces/srv/*.srv)

# The ROS wheels' bootstrapper re-executes every Python process of the venv once with
# LD_LIBRARY_PATH set; nothing needs sourcing.
ROS_CMAKE_ENV := AMENT_PREFIX_PATH=$(VENV_ABS) CMAKE_PREFIX_PATH=$(VENV_ABS) \
	PATH=$(VENV_ABS)/bin:$$PATH

.PHONY: help setup bench-setup train train-inprocess test clean distclean

help:
	@echo "make train   set up .venv if needed, then train through the ROS 2 nodes:"
	@echo "             mpo-ros-launch sim_train task:=\$$TASK ... (bridge + actor + learner)"
	@echo "             (TASK=$(TASK) STEPS=$(STEPS) SEED=$(SEED) OUT=$(OUT) TRAIN_ARGS=...)"
	@echo "make train-inprocess  the same task in one process: mpo-ros-train --task \$$TASK ..."
	@echo "make test    set up .venv if needed, then run pytest (PYTEST_ARGS=...)"
	@echo "make setup   only the setup steps"
	@echo "make bench-setup  also the benchmark-only packages (requirements-bench.txt)"
	@echo "make clean   remove build/ (the interfaces are rebuilt on the next run)"
	@echo "make distclean  remove build/ and .venv/"

setup: $(STAMP_PKG)

# Benchmark-only packages (sb3-contrib's reference TRPO), pinned in requirements-bench.txt.
bench-setup: $(STAMP_PKG)
	$(VPY) -m pip install -q -r requirements-bench.txt -c constraints.txt

# TRAIN_ARGS: more `name:=value` launcher arguments, e.g. learner.replay.min_size:=500.
train: $(STAMP_PKG)
	@echo "==> training through ROS 2 (bridge, actor, learner): $(TASK), $(STEPS) steps, seed $(SEED) -> $(OUT)"
	$(VENV)/bin/mpo-ros-launch sim_train task:=$(TASK) learner.max_env_steps:=$(STEPS) \
		learner.out_dir:=$(OUT) learner.seed:=$(SEED) actor.seed:=$(SEED) bridge.seed:=$(SEED) \
		$(TRAIN_ARGS)
	@echo "==> learning curve: $(OUT)/learning_curve.png"

# TRAIN_ARGS: more mpo-ros-train flags, e.g. --updates_per_step 0.5.
train-inprocess: $(STAMP_PKG)
	@echo "==> training in-process: $(TASK), $(STEPS) steps, seed $(SEED) -> $(OUT)"
	$(VENV)/bin/mpo-ros-train --task $(TASK) --steps $(STEPS) --seed $(SEED) --out $(OUT) \
		$(TRAIN_ARGS)

test: $(STAMP_PKG)
	@echo "==> running tests"
	$(VPY) -m pytest $(PYTEST_ARGS)

# (a) virtual environment
$(STAMP_VENV):
	@echo "==> [1/5] creating virtual environment $(VENV) with $(PYTHON)"
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found" >&2; exit 1; }
	@command -v cmake >/dev/null || { echo "error: cmake not found (apt install cmake)" >&2; exit 1; }
	@command -v c++ >/dev/null || { echo "error: no C++ compiler (apt install g++)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@touch $@

# (b) pinned Python dependencies: ROS 2 Kilted wheels, torch (CPU), MuJoCo, test tools
$(STAMP_DEPS): requirements.txt constraints.txt $(STAMP_VENV)
	@echo "==> [2/5] installing Python dependencies (requirements.txt + constraints.txt)"
	$(VPY) -m pip install --disable-pip-version-check -r requirements.txt -c constraints.txt
	@touch $@

# (c) rewrite the build-machine include paths in the message wheels' CMake exports
$(STAMP_CMAKEFIX): tools/fix_ros_cmake.sh $(STAMP_DEPS)
	@echo "==> [3/5] fixing the CMake exports of the ROS message wheels"
	tools/fix_ros_cmake.sh $(VENV)
	@touch $@

# (d) generate, build and install mpo_ros_interfaces into the venv
$(STAMP_IFACES): $(IFACE_SRCS) $(STAMP_CMAKEFIX)
	@echo "==> [4/5] building mpo_ros_interfaces into $(VENV)"
	$(ROS_CMAKE_ENV) cmake -S mpo_ros_interfaces -B $(BUILD_DIR) \
		-DCMAKE_INSTALL_PREFIX=$(VENV_ABS) -DPython3_EXECUTABLE=$(VENV_ABS)/bin/python \
		-DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF --log-level=WARNING
	$(ROS_CMAKE_ENV) cmake --build $(BUILD_DIR) -j $(JOBS)
	$(ROS_CMAKE_ENV) cmake --install $(BUILD_DIR) >/dev/null
	$(VPY) -c "import mpo_ros_interfaces.msg, mpo_ros_interfaces.srv"
	@touch $@

# (e) mpo_ros itself, editable (code changes need no reinstall)
$(STAMP_PKG): setup.py setup.cfg package.xml $(STAMP_IFACES)
	@echo "==> [5/5] installing mpo_ros (editable)"
	$(VPY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	@test -x $(VENV)/bin/mpo-ros-train || { echo "error: $(VENV)/bin/mpo-ros-train missing" >&2; exit 1; }
	@touch $@

clean:
	rm -rf build
	rm -f $(STAMP_IFACES) $(STAMP_PKG)

distclean:
	rm -rf build $(VENV)
