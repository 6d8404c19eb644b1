#!/usr/bin/env bash
# Installs what aps needs on Debian 12 (bookworm): build tools, Vulkan headers and loader,
# volk, the shader compiler and validator, the validation layer, oneDNN (the CPU device's
# conv and matmul), zlib and stb (datasets and PNGs), the Fashion-MNIST dataset, and
# lavapipe from bookworm-backports (Mesa 25: 2-3x faster than bookworm's Mesa 22.3; aps
# works on both), and for the viewer (aps view) SDL2, cglm and, for its tests, Xvfb.
# The backports suite is added to the machine's own Debian source; no address is hard-coded.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
packages=(cmake make gcc libc6-dev pkg-config libvulkan-dev libvulkan1 libvulkan-volk-dev
  glslang-tools spirv-tools vulkan-validationlayers libdnnl-dev zlib1g-dev libstb-dev dataset-fashion-mnist)
# The viewer's packages go in with Mesa: libsdl2-dev pulls libgbm-dev, which must match the
# libgbm1 of the Mesa chosen (bookworm's or bookworm-backports').
viewer=(libsdl2-dev libcglm-dev xvfb xauth)
missing=()
for p in "${packages[@]}" "${viewer[@]}" mesa-vulkan-drivers; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
mesa=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
if [ ${#missing[@]} -eq 0 ] && [[ "$mesa" == 25.* ]]; then
  exit 0
fi
if [ "${APS_STOCK_MESA:-0}" != 1 ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 || true)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "setup-debian: cannot find this machine's Debian mirror" >&2; exit 1; }
  echo "deb $mirror bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/aps-bookworm-backports.list >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
if [ "${APS_STOCK_MESA:-0}" = 1 ]; then
  $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers "${viewer[@]}" >/dev/null
else
  $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers "${viewer[@]}" >/dev/null
fi
echo "setup-debian: installed; lavapipe is Mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
