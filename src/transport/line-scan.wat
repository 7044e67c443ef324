;; Is an SMTP message chunk already in wire form? (see line-scan.ts)
;; Memory: byte 15 = the byte before the chunk, bytes 16 … 16+len-1 = the chunk, then at least 16
;; padding bytes that break no rule. Every position p with b = mem[p], a = mem[p-1] is checked,
;; sixteen at a time: b is LF without a being CR, a is CR without b being LF (written as one XOR),
;; or b is a dot right after an LF. Returns 1 if any position breaks a rule.
(module
  (memory (export "memory") 5)
  (func (export "dirty") (param $len i32) (result i32)
    (local $p i32) (local $end i32) (local $found v128) (local $b v128) (local $a v128)
    (local $LF v128) (local $CR v128) (local $DOT v128)
    (local.set $LF (i8x16.splat (i32.const 10)))
    (local.set $CR (i8x16.splat (i32.const 13)))
    (local.set $DOT (i8x16.splat (i32.const 46)))
    (local.set $p (i32.const 16))
    (local.set $end (i32.add (i32.const 16) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $b (v128.load (local.get $p)))
        (local.set $a (v128.load (i32.sub (local.get $p) (i32.const 1))))
        (local.set $found (v128.or (local.get $found)
          (v128.or
            (v128.xor (i8x16.eq (local.get $b) (local.get $LF)) (i8x16.eq (local.get $a) (local.get $CR)))
            (v128.and (i8x16.eq (local.get $b) (local.get $DOT)) (i8x16.eq (local.get $a) (local.get $LF))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (v128.any_true (local.get $found)))
)
