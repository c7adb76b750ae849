"""Recipes (experiment configs) loaded by path, from any working directory.

A recipe is a Python file whose `get_config(arg=None)` returns an
`ml_collections.ConfigDict` (`experiments/fashion.py` is the reference). A
recipe that extends another names it by file, next to itself:

  fashion = recipes.sibling(__file__, "fashion")

so a folder of recipes works wherever it lies (a clone, a copy, an installed
ganjax) without being a package or on `sys.path`. In a script:

  config = recipes.load("experiments/fashion.py:short")
"""

import hashlib
import importlib.machinery
import importlib.util
import os


def load_module(path: str):
  """Executes the recipe file `path` (any extension) as a fresh module.

  Args:
    path: the recipe file.

  Returns:
    The module; its `get_config(arg=None)` gives the config.

  Raises:
    FileNotFoundError: `path` is not a file.
  """
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"recipe {path} does not exist; give the path of "
                            "a recipe file such as experiments/fashion.py")
  # One name per file, so recipes of the same name in two folders differ.
  stem = os.path.splitext(os.path.basename(path))[0]
  name = (f"ganjax_recipe_{stem}_"
          f"{hashlib.sha256(path.encode()).hexdigest()[:8]}")
  loader = importlib.machinery.SourceFileLoader(name, path)
  module = importlib.util.module_from_spec(
      importlib.util.spec_from_loader(name, loader))
  loader.exec_module(module)
  return module


def sibling(recipe_file: str, name: str):
  """The recipe module `name` (e.g. "fashion" for fashion.py) from the
  folder of `recipe_file` (a recipe passes its `__file__`)."""
  return load_module(os.path.join(os.path.dirname(recipe_file),
                                  f"{name}.py"))


def tuning_sweep(recipe, arg, sweep: str, steps: int = 3000):
  """`recipe`'s config (a module with get_config) at variant `arg` (default
  "short", the 3,000-step schedule) with `config.sweep = sweep`: a tuning
  sweep's config. On the short schedule it trains `steps` steps (e.g. a
  time budget), scored and checkpointed once, at the end; :smoke is kept."""
  config = recipe.get_config(arg or "short")
  config.sweep = sweep
  if config.num_steps == 3000:
    config.num_steps = config.eval_every = steps
    if steps != 3000:
      config.checkpoint_every = steps
  return config


def load(spec: str):
  """The config of "PATH[:VARIANTS]", as `--config=` reads it.

  Args:
    spec: e.g. "experiments/fashion.py:short,keras".

  Returns:
    The recipe's `ml_collections.ConfigDict`.
  """
  path, _, arg = spec.partition(":")
  return load_module(path).get_config(arg or None)
