;; The second linear memory of the `multi-memory` attack: a component whose
;; one core module owns its memory and grows it on request. `make build`
;; plugs it into the hostile component built with `--features two-memories`
;; (wac plug), giving target/hostile-guest/hostile_two_memories.wasm.
(component
  (core module $m
    (memory 1)
    ;; grow this module's memory by `mib` MiB; the old size in pages, or -1
    (func (export "grow") (param $mib i32) (result i32)
      local.get $mib
      i32.const 16 ;; 16 pages of 64 KiB = 1 MiB
      i32.mul
      memory.grow))
  (core instance $i (instantiate $m))
  (func $grow (param "mib" u32) (result s32) (canon lift (core func $i "grow")))
  (instance $grower (export "grow" (func $grow)))
  (export "actionbox:hostile/grower" (instance $grower)))
