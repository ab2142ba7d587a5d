; Proof Market example circuit: Merkle membership with witness-dependent choices
; (zkLLVM's `==`, `!=`, `&&` and `?:` on field values, issue 15 item 5).
; The C++ source (zkLLVM; hash<poseidon> inlined as in poseidon-vectors.ll):
;
;   using field = typename pallas::base_field_type::value_type;
;   typedef __attribute__((ext_vector_type(2))) field pair;
;   typedef __attribute__((ext_vector_type(4))) field quad;
;
;   [[circuit]] pair verify_path(field leaf, quad siblings, quad right, field root) {
;       field h = leaf;
;       for (int i = 0; i < 4; i++) {
;           bool r = right[i] == 1;             // 1: the node at level i is a right child
;           field l = r ? siblings[i] : h;
;           field rr = r ? h : siblings[i];
;           h = hash<hashes::poseidon>(l, rr);  // permutation of (0, l, rr), lane 2
;       }
;       bool member = h == root && leaf != 0;   // an empty leaf is never a member
;       return pair{h, member ? 1 : 0};
;   }
;
; Public input (10 elements): the leaf, the four siblings from the leaf up, the four
; direction flags, the claimed root, as zkLLVM's input JSON writes them:
;   [{"field": leaf}, {"vector": [4 x {"field": ..}]}, {"vector": [4 x {"field": ..}]},
;    {"field": root}]
; Two outputs, in order: the root the path leads to, and 1 if it is the claimed root
; (and the leaf is not 0), else 0. A flag other than 1 means "left child".

define dso_local <2 x __zkllvm_field_pallas_base> @_Z11verify_pathu26__zkllvm_field_pallas_baseDv4_u26__zkllvm_field_pallas_baseS0_u26__zkllvm_field_pallas_base(__zkllvm_field_pallas_base noundef %leaf, <4 x __zkllvm_field_pallas_base> noundef %siblings, <4 x __zkllvm_field_pallas_base> noundef %right, __zkllvm_field_pallas_base noundef %root) local_unnamed_addr #0 {
entry:
  br label %level

level:
  %i = phi i32 [ 0, %entry ], [ %i.next, %level ]
  %h = phi __zkllvm_field_pallas_base [ %leaf, %entry ], [ %h.next, %level ]
  %flag = extractelement <4 x __zkllvm_field_pallas_base> %right, i32 %i
  %sib = extractelement <4 x __zkllvm_field_pallas_base> %siblings, i32 %i
  %r = icmp eq __zkllvm_field_pallas_base %flag, f0x1
  %l = select i1 %r, __zkllvm_field_pallas_base %sib, __zkllvm_field_pallas_base %h
  %rr = select i1 %r, __zkllvm_field_pallas_base %h, __zkllvm_field_pallas_base %sib
  %h.next = call noundef __zkllvm_field_pallas_base @_ZN3nil7crypto34hashINS0_6hashes8poseidonEEENT_10block_typeES5_S5_(__zkllvm_field_pallas_base noundef %l, __zkllvm_field_pallas_base noundef %rr)
  %i.next = add nuw nsw i32 %i, 1
  %more = icmp ult i32 %i.next, 4
  br i1 %more, label %level, label %done

done:
  %same = icmp eq __zkllvm_field_pallas_base %h.next, %root
  %nonzero = icmp ne __zkllvm_field_pallas_base %leaf, f0x0
  %member = select i1 %same, i1 %nonzero, i1 false
  %bit = select i1 %member, __zkllvm_field_pallas_base f0x1, __zkllvm_field_pallas_base f0x0
  %out0 = insertelement <2 x __zkllvm_field_pallas_base> undef, __zkllvm_field_pallas_base %h.next, i64 0
  %out = insertelement <2 x __zkllvm_field_pallas_base> %out0, __zkllvm_field_pallas_base %bit, i64 1
  ret <2 x __zkllvm_field_pallas_base> %out
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
