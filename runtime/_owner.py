"""The one shape every owner of a native resource has: close(), a context manager, and
``__del__`` as the backstop (a method, so it costs nothing per object, unlike a
weakref.finalize object; PEP 442 runs it for objects in reference cycles too).

The finalizers of one garbage cycle run in any order (cffi's ``ffi.gc`` destructors
among them): what a backstop still calls into must not be garbage with it. The
pooling allocator's C pool is the case: ``runtime.pooling._IN_USE`` keeps it reachable
until it is closed and unused."""
import threading


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


_LOCK_MAKING = threading.Lock()


def lock_of(obj) -> threading.Lock:
    """``obj._lock``, made on first use (most tables never need theirs: a lock per live
    view would cost 88 bytes)."""
    lock = obj._lock
    if lock is None:
        with _LOCK_MAKING:
            lock = obj._lock
            if lock is None:
                lock = obj._lock = threading.Lock()
    return lock
