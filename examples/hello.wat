;; A small module with a static data image, a funcref table and exports.
(module $hello
  (memory (export "memory") 2 16)
  (data (i32.const 1024) "Hello, wasmenv!\00")
  (data (i32.const 70000) "second page")
  (table (export "table") 4 funcref)
  (elem (i32.const 0) $answer $twice)
  (global $counter (export "counter") (mut i32) (i32.const 42))
  (func $answer (export "answer") (result i32) (i32.const 42))
  (func $twice (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
)
