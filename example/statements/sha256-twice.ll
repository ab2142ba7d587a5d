; Proof Market example circuit: zkLLVM's SHA-256 builtin, chained.
; The C++ source (zkLLVM, crypto3's hash<sha2<256>> as its library emits it):
;
;   using block_type = typename hashes::sha2<256>::block_type;  // ext_vector_type(2) field
;
;   [[circuit]] block_type sha256_twice(block_type a, block_type b) {
;       block_type h = hash<hashes::sha2<256>>(a, b);
;       return hash<hashes::sha2<256>>(h, b);
;   }
;
; A block is two field elements of 128 bits each. hash(a, b) is the SHA-256 digest of
; the 64 bytes a0 || a1 || b0 || b1 (each element as 16 big-endian bytes), returned as
; two elements: digest bytes 0..16 and 16..32, big-endian (zkllvm-blueprint's sha256
; component). An element of 2^128 or more is refused.
; Public input: two vectors of two elements, as zkLLVM's input JSON writes them:
;   [{"vector": [{"field": a0}, {"field": a1}]}, {"vector": [{"field": b0}, {"field": b1}]}]
; Two outputs: the halves of SHA-256(SHA-256(a || b) || b).

define dso_local <2 x __zkllvm_field_pallas_base> @_Z12sha256_twiceDv2_u26__zkllvm_field_pallas_baseS_(<2 x __zkllvm_field_pallas_base> noundef %a, <2 x __zkllvm_field_pallas_base> noundef %b) local_unnamed_addr #0 {
entry:
  %h = call <2 x __zkllvm_field_pallas_base> @_ZN3nil7crypto34hashINS0_6hashes4sha2ILm256EEEEENT_10block_typeES6_S6_(<2 x __zkllvm_field_pallas_base> noundef %a, <2 x __zkllvm_field_pallas_base> noundef %b)
  %r = call <2 x __zkllvm_field_pallas_base> @_ZN3nil7crypto34hashINS0_6hashes4sha2ILm256EEEEENT_10block_typeES6_S6_(<2 x __zkllvm_field_pallas_base> noundef %h, <2 x __zkllvm_field_pallas_base> noundef %b)
  ret <2 x __zkllvm_field_pallas_base> %r
}

define linkonce_odr dso_local <2 x __zkllvm_field_pallas_base> @_ZN3nil7crypto34hashINS0_6hashes4sha2ILm256EEEEENT_10block_typeES6_S6_(<2 x __zkllvm_field_pallas_base> noundef %0, <2 x __zkllvm_field_pallas_base> noundef %1) local_unnamed_addr #1 {
  %3 = tail call <2 x __zkllvm_field_pallas_base> @llvm.assigner.sha2_256.v2__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base> %0, <2 x __zkllvm_field_pallas_base> %1)
  ret <2 x __zkllvm_field_pallas_base> %3
}

; Function Attrs: nounwind
declare <2 x __zkllvm_field_pallas_base> @llvm.assigner.sha2_256.v2__zkllvm_field_pallas_base(<2 x __zkllvm_field_pallas_base>, <2 x __zkllvm_field_pallas_base>) #2

attributes #0 = { circuit mustprogress "frame-pointer"="all" }
attributes #1 = { mustprogress nounwind }
attributes #2 = { nounwind }
