"""The one rule every registry (losses, penalties, architectures, datasets)
follows when a name is registered twice."""


def origin(obj):
  """Where `obj` was written: module, qualified name and first line (a
  recipe file run twice makes new objects from the same code)."""
  code = getattr(obj, "__code__", None)
  return (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None),
          code.co_firstlineno if code else None)


def check_new(registry: dict, name: str, entry, kind: str, key=origin):
  """Refuses to register `name` again unless `entry` equals the one there or
  comes from the same code (`key` of both equal): a recipe file that
  registers something may run more than once in a program."""
  old = registry.get(name)
  if old is None or old == entry or key(old) == key(entry) != key(None):
    return
  raise ValueError(f"A {kind} named {name!r} is already registered; choose "
                   "another name.")
