; Proof Market example circuit: vectors of field elements and zkLLVM's Poseidon builtin.
; The C++ source (zkLLVM, crypto3's hash<poseidon> inlined as its library emits it):
;
;   using field = typename pallas::base_field_type::value_type;
;   typedef __attribute__((ext_vector_type(2))) field pair;
;   typedef __attribute__((ext_vector_type(3))) field triple;
;
;   [[circuit]] triple commit_and_scale(pair v, field k) {
;       field h = hash<hashes::poseidon>(v.x, v.y);   // permutation of (0, x, y), lane 2
;       pair w = v * pair{0, k} + pair{5, 7};
;       triple r = __builtin_shufflevector(w, w, 1, 0, -1);
;       r.z = h;
;       return r;                                     // (y*k + 7, 5, poseidon(x, y))
;   }
;
; Public input: one vector of two elements, then k, as zkLLVM's input JSON writes it:
;   [{"vector": [{"field": x}, {"field": y}]}, {"field": k}]
; Three outputs, in order: y*k + 7, 5, and the Poseidon hash of (x, y).

define dso_local <3 x __zkllvm_field_pallas_base> @_Z16commit_and_scaleDv2_u26__zkllvm_field_pallas_baseu26__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base> noundef %v, __zkllvm_field_pallas_base noundef %k) local_unnamed_addr #0 {
entry:
  %x = extractelement <2 x __zkllvm_field_pallas_base> %v, i32 0
  %y = extractelement <2 x __zkllvm_field_pallas_base> %v, i64 1
  %h = call noundef __zkllvm_field_pallas_base @_ZN3nil7crypto34hashINS0_6hashes8poseidonEEENT_10block_typeES5_S5_(__zkllvm_field_pallas_base noundef %x, __zkllvm_field_pallas_base noundef %y)
  %s = insertelement <2 x __zkllvm_field_pallas_base> zeroinitializer, __zkllvm_field_pallas_base %k, i32 1
  %w0 = mul <2 x __zkllvm_field_pallas_base> %v, %s
  %w = add <2 x __zkllvm_field_pallas_base> %w0, <__zkllvm_field_pallas_base f0x5, __zkllvm_field_pallas_base f0x7>
  %r0 = shufflevector <2 x __zkllvm_field_pallas_base> %w, <2 x __zkllvm_field_pallas_base> %w, <3 x i32> <i32 1, i32 0, i32 undef>
  %r = insertelement <3 x __zkllvm_field_pallas_base> %r0, __zkllvm_field_pallas_base %h, i32 2
  ret <3 x __zkllvm_field_pallas_base> %r
}

define linkonce_odr dso_local noundef __zkllvm_field_pallas_base @_ZN3nil7crypto34hashINS0_6hashes8poseidonEEENT_10block_typeES5_S5_(__zkllvm_field_pallas_base noundef %0, __zkllvm_field_pallas_base noundef %1) local_unnamed_addr #1 {
  %3 = insertelement <3 x __zkllvm_field_pallas_base> <__zkllvm_field_pallas_base f0x0, __zkllvm_field_pallas_base undef, __zkllvm_field_pallas_base undef>, __zkllvm_field_pallas_base %0, i32 1
  %4 = insertelement <3 x __zkllvm_field_pallas_base> %3, __zkllvm_field_pallas_base %1, i32 2
  %5 = tail call <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base> %4)
  %6 = extractelement <3 x __zkllvm_field_pallas_base> %5, i32 2
  ret __zkllvm_field_pallas_base %6
}

; Function Attrs: nounwind
declare <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base>) #2

attributes #0 = { circuit mustprogress "frame-pointer"="all" }
attributes #1 = { mustprogress nounwind }
attributes #2 = { nounwind }
