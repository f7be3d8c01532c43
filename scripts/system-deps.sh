#!/usr/bin/env bash
# System libraries aware3d's optional back ends need: Open3D imports libusb-1.0; EGL for the GL
# renderer; Debian's headless Chromium (and its driver) for `aware3d view --screenshot` and its test.
# Installed with apt when running as root and missing; otherwise we only say what is missing.
set -u
missing=()
ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0" || missing+=(libusb-1.0-0)
ldconfig -p 2>/dev/null | grep -q "libEGL.so.1" || missing+=(libegl1 libgl1-mesa-dri)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || echo "warning: could not install ${missing[*]}; Open3D, EGL rendering or viewer screenshots may be unavailable" >&2
else
  echo "note: missing system packages ${missing[*]} (install them for Open3D / EGL rendering / viewer screenshots)" >&2
fi
exit 0
