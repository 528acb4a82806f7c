;; A dynamic-linking "side module": memory and bases come from the host, so data is
;; placed at run time (Segmented init resolved through the runtime's global callbacks).
(module $side
  (import "env" "memory" (memory 1))
  (import "env" "__memory_base" (global $mb i32))
  (import "env" "__table_base" (global $tb i32))
  (import "env" "table" (table 4 funcref))
  (data (global.get $mb) "side data at memory_base")
  (data (offset (i32.add (global.get $mb) (i32.const 64))) "extended-const offset")
  (elem (global.get $tb) $f)
  (func $f (export "f") (result i32) (i32.const 7))
)
