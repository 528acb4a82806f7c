"""Exceptions raised by wasmenv (decode, model, artifacts)."""


class WasmEnvError(Exception):
    """Root of every error wasmenv raises."""


class DecodeError(WasmEnvError, ValueError):
    """A malformed or invalid module; ``offset`` is the byte offset, ``section`` its section."""

    def __init__(self, message, offset=None, section=None):
        self.message = message
        self.offset = offset
        self.section = section
        where = []
        if section is not None:
            where.append(f"section {section}")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        text = f"{message} ({', '.join(where)})" if where else message
        super().__init__(text)

    def __reduce__(self):
        return (type(self), (self.message, self.offset, self.section))

    def moved(self, delta: int) -> "DecodeError":
        """The same error with its offset moved by ``delta`` bytes (for bytes validated
        out of the module they came from); subclasses keep ``offset`` second in
        ``__reduce__``'s arguments."""
        if self.offset is None or not delta:
            return self
        cls, args = self.__reduce__()
        return cls(args[0], args[1] + delta, *args[2:])


class UnsupportedFeature(DecodeError):
    """The module uses a proposal wasmenv does not decode; ``feature`` names it."""

    def __init__(self, feature, offset=None, section=None, detail=None):
        self.feature = feature
        self.detail = detail
        msg = f"unsupported feature: {feature}" + (f" ({detail})" if detail else "")
        super().__init__(msg, offset, section)
        self.message = msg

    def __reduce__(self):
        return (type(self), (self.feature, self.offset, self.section, self.detail))


class ArtifactError(WasmEnvError, ValueError):
    """A compiled artifact on disk is missing, corrupt or from another format version."""
