; Proof Market example circuit: arithmetic over the Pallas base field.
; For public inputs a, b:
;   c = (a + b) * a + b * (a + b) * (a + b)
;   result = c^3 / (b - a) + a^2 + 0x12345678901234567890
; Written by hand in the zkLLVM IR dialect (typed pointers, pow as a called loop).
source_filename = "arithmetic.cpp"
target triple = "x86_64-unknown-linux-gnu"

define dso_local __zkllvm_field_pallas_base @square_by_loop(__zkllvm_field_pallas_base %x, i32 %n) #0 {
entry:
  br label %loop

loop:
  %i = phi i32 [ 0, %entry ], [ %i.next, %body ]
  %acc = phi __zkllvm_field_pallas_base [ f0x1, %entry ], [ %acc.next, %body ]
  %more = icmp slt i32 %i, %n
  br i1 %more, label %body, label %done

body:
  %acc.next = mul __zkllvm_field_pallas_base %acc, %x
  %i.next = add nsw i32 %i, 1
  br label %loop

done:
  ret __zkllvm_field_pallas_base %acc
}

define dso_local __zkllvm_field_pallas_base @arithmetic_example(__zkllvm_field_pallas_base %a, __zkllvm_field_pallas_base %b) #1 {
entry:
  %sum = add __zkllvm_field_pallas_base %a, %b
  %t1 = mul __zkllvm_field_pallas_base %sum, %a
  %t2 = mul __zkllvm_field_pallas_base %b, %sum
  %t3 = mul __zkllvm_field_pallas_base %t2, %sum
  %c = add __zkllvm_field_pallas_base %t1, %t3
  %c2 = mul __zkllvm_field_pallas_base %c, %c
  %c3 = mul __zkllvm_field_pallas_base %c2, %c
  %diff = sub __zkllvm_field_pallas_base %b, %a
  %q = sdiv __zkllvm_field_pallas_base %c3, %diff
  %a2 = call __zkllvm_field_pallas_base @square_by_loop(__zkllvm_field_pallas_base %a, i32 2)
  %r1 = add __zkllvm_field_pallas_base %q, %a2
  %r = add __zkllvm_field_pallas_base %r1, f0x12345678901234567890
  ret __zkllvm_field_pallas_base %r
}

attributes #0 = { mustprogress nounwind }
attributes #1 = { circuit mustprogress nounwind }
