;; Two memories (one 64-bit), a shared memory, passive data and a sparse data layout.
(module $multi
  (memory $a (export "a") 1 1)
  (memory $b (export "b") i64 1 100)
  (memory $s (export "shared") 1 4 shared)
  (data (memory $a) (i32.const 8) "in a")
  (data (memory $b) (i64.const 65000) "in b, near the end of page 0")
  (data $passive "passive bytes")
  (global (export "g64") i64 (i64.const -1))
)
