"""Image grids and PNG files."""

import math
import os

import numpy as np
from PIL import Image


def to_uint8(images):
  """Model range [-1, 1] -> uint8 [0, 255], shape (N, H, W) or (N, H, W, C)."""
  images = np.asarray(images, np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images_uint8, columns=None, pad=2):
  """Tiles (N, H, W[, C]) uint8 images into one image with `pad` pixel gaps."""
  n, h, w = images_uint8.shape[:3]
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  shape = (rows * (h + pad) + pad, columns * (w + pad) + pad,
           *images_uint8.shape[3:])
  canvas = np.full(shape, 255, np.uint8)
  for i, image in enumerate(images_uint8):
    r, c = divmod(i, columns)
    y, x = pad + r * (h + pad), pad + c * (w + pad)
    canvas[y:y + h, x:x + w] = image
  return canvas


def save_png(path, image_uint8, scale=2):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  picture = Image.fromarray(image_uint8)
  if scale != 1:
    picture = picture.resize((picture.width * scale, picture.height * scale),
                             Image.NEAREST)
  picture.save(path)
