"""The one lookup the converters share: which supported class of a framework an object is."""


def supported_class_name(obj, namespace, label: str, base, names, function: str) -> str:
    """The name in ``names`` of the class in ``namespace`` (spelled ``label``, e.g. "torch.nn")
    that ``obj`` is an instance of. TypeError naming ``function`` and what it supports when
    ``obj`` is not a ``base`` instance or not one of those classes."""
    if not isinstance(obj, base):
        raise TypeError(f"{function} needs a {label}.{base.__name__}, got {type(obj).__name__}")
    for name in names:
        if isinstance(obj, getattr(namespace, name)):
            return name
    raise TypeError(f"{function} does not support {type(obj).__name__}; supported: "
                    f"{label}.{f', {label}.'.join(names)}")
