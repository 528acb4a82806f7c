"""The one shape every owner of a native resource has: close(), a context manager, and
``__del__`` as the backstop (a method, so it costs nothing per object, unlike a
weakref.finalize object; PEP 442 runs it for objects in reference cycles too)."""


class Owner:
    __slots__ = ()

    def close(self) -> None:  # pragma: no cover - every owner defines it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # a half-built object, or interpreter shutdown
            pass
