"""Recipes (experiment configs) loaded by path, from any working directory.

A recipe is a Python file whose `get_config(arg=None)` returns an
`ml_collections.ConfigDict` (`experiments/fashion.py` is the reference). A
recipe that extends another names it by file, next to itself:

  fashion = recipes.sibling(__file__, "fashion")

so a folder of recipes works wherever it lies (a clone, a copy, an installed
ganjax) without being a package or on `sys.path`. In a script:

  config = recipes.load("experiments/fashion.py:short")
"""

import importlib.util
import os


def load_module(path: str):
  """The recipe file `path` as a fresh module."""
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"recipe {path} does not exist; give the path of "
                            "a recipe file such as experiments/fashion.py")
  name = "ganjax_recipe_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sibling(recipe_file: str, name: str):
  """The recipe `name` (e.g. "fashion") from the folder of `recipe_file`."""
  return load_module(os.path.join(os.path.dirname(recipe_file),
                                  f"{name}.py"))


def load(spec: str):
  """The config of "PATH[:VARIANTS]", as `--config=` reads it: e.g.
  "experiments/fashion.py:short,keras"."""
  path, _, arg = spec.partition(":")
  return load_module(path).get_config(arg or None)
