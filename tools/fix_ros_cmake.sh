#!/usr/bin/env bash
# Work around a packaging defect of the ROS 2 message wheels on PyPI (ros-std-msgs & co).
#
# Why: each message wheel ships the CMake export file
#   <venv>/share/<pkg>/cmake/export_<pkg>__rosidl_generator_pyExport.cmake
# whose INTERFACE_INCLUDE_DIRECTORIES name two paths of the machine the wheels were built on:
#   /opt/python/cp311-cp311/include/python3.11                            (Python headers)
#   /opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include (numpy headers)
# Those paths do not exist here, and CMake's generate step fails on non-existent include
# directories of imported targets as soon as mpo_ros_interfaces links against the Python
# typesupport of std_msgs / builtin_interfaces. Rewriting the two strings in the venv's own
# copies of the files to the real paths fixes it without root (the alternative, symlinks
# under /opt/python, needs root and touches the system).
#
# Idempotent: once rewritten the build-machine strings are gone, so a second run changes
# nothing. `pip install` of a message wheel restores the original file; run this again then
# (the Makefile does, because its stamp depends on the requirements stamp).
#
# Usage: tools/fix_ros_cmake.sh [VENV]        (default: .venv)
set -euo pipefail

venv=${1:-.venv}
python="$venv/bin/python"
[[ -x "$python" ]] || { echo "fix_ros_cmake: no python at $python" >&2; exit 1; }

bad_py_include=/opt/python/cp311-cp311/include/python3.11
bad_np_include=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include

# _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 skips the wheels' re-exec bootstrapper (not needed here).
read -r py_include np_include < <(
    _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$python" -c \
        'import sysconfig, numpy; print(sysconfig.get_paths()["include"], numpy.get_include())'
)

if [[ ! -f "$py_include/Python.h" ]]; then
    echo "fix_ros_cmake: $py_include/Python.h not found." >&2
    echo "  Install the Python development headers (Debian/Ubuntu: apt install python3.11-dev)." >&2
    exit 1
fi
[[ -d "$np_include" ]] || { echo "fix_ros_cmake: numpy include $np_include missing" >&2; exit 1; }

# Escape for the replacement side of a sed s||| expression.
escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

fixed=0
shopt -s nullglob
for f in "$venv"/share/*/cmake/*.cmake; do
    if grep -qF -e "$bad_py_include" -e "$bad_np_include" "$f"; then
        sed -i \
            -e "s|$bad_np_include|$(escape "$np_include")|g" \
            -e "s|$bad_py_include|$(escape "$py_include")|g" \
            "$f"
        fixed=$((fixed + 1))
    fi
done

left=$(grep -lF -e "$bad_py_include" -e "$bad_np_include" "$venv"/share/*/cmake/*.cmake || true)
if [[ -n "$left" ]]; then
    echo "fix_ros_cmake: build-machine paths still present in:" >&2
    echo "$left" >&2
    exit 1
fi
echo "fix_ros_cmake: rewrote $fixed CMake export file(s) (Python include: $py_include)"
