"""The decoder's limits: counts and sizes past these are refused before anything is
allocated (wasmparser's limits.rs, as enforced by Wasmtime)."""

MAX_TYPES = 1_000_000
MAX_FUNCTIONS = 1_000_000
MAX_IMPORTS = 1_000_000
MAX_EXPORTS = 1_000_000
MAX_GLOBALS = 1_000_000
MAX_TAGS = 1_000_000
MAX_ELEMENT_SEGMENTS = 100_000
MAX_DATA_SEGMENTS = 100_000
MAX_FUNCTION_SIZE = 7_654_321
MAX_FUNCTION_PARAMS = 1000
MAX_FUNCTION_RETURNS = 1000
MAX_TABLE_ENTRIES = 10_000_000  # items in one element segment
MAX_TABLES = 100
MAX_MEMORIES = 100
MAX_TYPE_SIZE = 1_000_000  # "effective type size" of all imports + exports
