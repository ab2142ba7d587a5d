; Proof Market example circuit: memory with addresses known at compile time.
; The C++ source (zkLLVM; std::array passed and returned by value, crypto3's
; hash<poseidon> as its library emits it):
;
;   using field = typename pallas::base_field_type::value_type;
;
;   // The Poseidon Merkle root of 8 leaves, and the sum of the leaves.
;   [[circuit]] std::array<field, 2> merkle_root_and_sum(std::array<field, 8> leaves) {
;       std::array<field, 8> layer = leaves;           // llvm.memcpy
;       std::array<field, 2> out = {};                 // llvm.memset
;       for (std::size_t i = 0; i < 8; i++)
;           out[1] += leaves[i];
;       for (std::size_t n = 8; n > 1; n /= 2)
;           for (std::size_t j = 0; j < n / 2; j++)
;               layer[j] = hash<hashes::poseidon>(layer[2 * j], layer[2 * j + 1]);
;       out[0] = layer[0];
;       return out;                                    // sret
;   }
;
; The IR is in the typed-pointer form of the zkLLVM versions the original market's
; statements came from (a field element takes 4 bytes in memory there, which the
; market learns from llvm.lifetime.start).
; Public input: one array of eight elements, as zkLLVM's input JSON writes it:
;   [{"array": [{"field": a0}, ..., {"field": a7}]}]
; Two outputs, in order: the Merkle root and the sum of the leaves.

%"struct.std::__1::array" = type { [8 x __zkllvm_field_pallas_base] }
%"struct.std::__1::array.0" = type { [2 x __zkllvm_field_pallas_base] }

define dso_local void @_Z19merkle_root_and_sumNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEE(%"struct.std::__1::array.0"* noalias nocapture writeonly sret(%"struct.std::__1::array.0") align 4 %agg.result, %"struct.std::__1::array"* nocapture noundef readonly byval(%"struct.std::__1::array") align 4 %leaves) local_unnamed_addr #0 {
entry:
  %layer = alloca %"struct.std::__1::array", align 4
  %0 = bitcast %"struct.std::__1::array"* %layer to i8*
  call void @llvm.lifetime.start.p0i8(i64 32, i8* nonnull %0) #3
  %1 = bitcast %"struct.std::__1::array"* %leaves to i8*
  call void @llvm.memcpy.p0i8.p0i8.i64(i8* noundef nonnull align 4 dereferenceable(32) %0, i8* noundef nonnull align 4 dereferenceable(32) %1, i64 32, i1 false)
  %2 = bitcast %"struct.std::__1::array.0"* %agg.result to i8*
  call void @llvm.memset.p0i8.i64(i8* noundef nonnull align 4 dereferenceable(8) %2, i8 0, i64 8, i1 false)
  %sum.ptr = getelementptr inbounds %"struct.std::__1::array.0", %"struct.std::__1::array.0"* %agg.result, i64 0, i32 0, i64 1
  br label %sum.loop

sum.loop:                                         ; preds = %sum.loop, %entry
  %i = phi i64 [ 0, %entry ], [ %i.next, %sum.loop ]
  %leaf.ptr = call fastcc noundef nonnull align 4 dereferenceable(4) __zkllvm_field_pallas_base* @_ZNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEixEm(%"struct.std::__1::array"* noundef nonnull align 4 dereferenceable(32) %leaves, i64 noundef %i) #3
  %leaf = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %leaf.ptr, align 4, !tbaa !3
  %acc = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %sum.ptr, align 4, !tbaa !3
  %acc.next = add __zkllvm_field_pallas_base %acc, %leaf
  store __zkllvm_field_pallas_base %acc.next, __zkllvm_field_pallas_base* %sum.ptr, align 4, !tbaa !3
  %i.next = add nuw nsw i64 %i, 1
  %sum.done = icmp eq i64 %i.next, 8
  br i1 %sum.done, label %level.loop, label %sum.loop, !llvm.loop !7

level.loop:                                       ; preds = %level.end, %sum.loop
  %n = phi i64 [ 8, %sum.loop ], [ %half, %level.end ]
  %half = lshr i64 %n, 1
  br label %pair.loop

pair.loop:                                        ; preds = %pair.loop, %level.loop
  %j = phi i64 [ 0, %level.loop ], [ %j.next, %pair.loop ]
  %l = shl nuw nsw i64 %j, 1
  %r = or i64 %l, 1
  %lp = call fastcc noundef nonnull align 4 dereferenceable(4) __zkllvm_field_pallas_base* @_ZNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEixEm(%"struct.std::__1::array"* noundef nonnull align 4 dereferenceable(32) %layer, i64 noundef %l) #3
  %lv = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %lp, align 4, !tbaa !3
  %rp = call fastcc noundef nonnull align 4 dereferenceable(4) __zkllvm_field_pallas_base* @_ZNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEixEm(%"struct.std::__1::array"* noundef nonnull align 4 dereferenceable(32) %layer, i64 noundef %r) #3
  %rv = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %rp, align 4, !tbaa !3
  %h = call noundef __zkllvm_field_pallas_base @_ZN3nil7crypto34hashINS0_6hashes8poseidonEEENT_10block_typeES5_S5_(__zkllvm_field_pallas_base noundef %lv, __zkllvm_field_pallas_base noundef %rv)
  %dp = call fastcc noundef nonnull align 4 dereferenceable(4) __zkllvm_field_pallas_base* @_ZNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEixEm(%"struct.std::__1::array"* noundef nonnull align 4 dereferenceable(32) %layer, i64 noundef %j) #3
  store __zkllvm_field_pallas_base %h, __zkllvm_field_pallas_base* %dp, align 4, !tbaa !3
  %j.next = add nuw nsw i64 %j, 1
  %pair.done = icmp eq i64 %j.next, %half
  br i1 %pair.done, label %level.end, label %pair.loop, !llvm.loop !9

level.end:                                        ; preds = %pair.loop
  %more = icmp ugt i64 %half, 1
  br i1 %more, label %level.loop, label %done, !llvm.loop !10

done:                                             ; preds = %level.end
  %root.ptr = getelementptr inbounds %"struct.std::__1::array", %"struct.std::__1::array"* %layer, i64 0, i32 0, i64 0
  %root = load __zkllvm_field_pallas_base, __zkllvm_field_pallas_base* %root.ptr, align 4, !tbaa !3
  %out0 = getelementptr inbounds %"struct.std::__1::array.0", %"struct.std::__1::array.0"* %agg.result, i64 0, i32 0, i64 0
  store __zkllvm_field_pallas_base %root, __zkllvm_field_pallas_base* %out0, align 4, !tbaa !3
  call void @llvm.lifetime.end.p0i8(i64 32, i8* nonnull %0) #3
  ret void
}

; Function Attrs: mustprogress nounwind
define internal fastcc noundef nonnull align 4 dereferenceable(4) __zkllvm_field_pallas_base* @_ZNSt3__15arrayIu26__zkllvm_field_pallas_baseLm8EEixEm(%"struct.std::__1::array"* noundef nonnull align 4 dereferenceable(32) %this, i64 noundef %i) unnamed_addr #1 align 2 {
  %elems = getelementptr inbounds %"struct.std::__1::array", %"struct.std::__1::array"* %this, i32 0, i32 0
  %p = getelementptr inbounds [8 x __zkllvm_field_pallas_base], [8 x __zkllvm_field_pallas_base]* %elems, i64 0, i64 %i
  ret __zkllvm_field_pallas_base* %p
}

define linkonce_odr dso_local noundef __zkllvm_field_pallas_base @_ZN3nil7crypto34hashINS0_6hashes8poseidonEEENT_10block_typeES5_S5_(__zkllvm_field_pallas_base noundef %0, __zkllvm_field_pallas_base noundef %1) local_unnamed_addr #1 {
  %3 = insertelement <3 x __zkllvm_field_pallas_base> <__zkllvm_field_pallas_base f0x0, __zkllvm_field_pallas_base undef, __zkllvm_field_pallas_base undef>, __zkllvm_field_pallas_base %0, i32 1
  %4 = insertelement <3 x __zkllvm_field_pallas_base> %3, __zkllvm_field_pallas_base %1, i32 2
  %5 = tail call <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base> %4)
  %6 = extractelement <3 x __zkllvm_field_pallas_base> %5, i32 2
  ret __zkllvm_field_pallas_base %6
}

declare void @llvm.lifetime.start.p0i8(i64 immarg, i8* nocapture) #2
declare void @llvm.lifetime.end.p0i8(i64 immarg, i8* nocapture) #2
declare void @llvm.memcpy.p0i8.p0i8.i64(i8* noalias nocapture writeonly, i8* noalias nocapture readonly, i64, i1 immarg) #2
declare void @llvm.memset.p0i8.i64(i8* nocapture writeonly, i8, i64, i1 immarg) #2
declare <3 x __zkllvm_field_pallas_base> @llvm.assigner.poseidon.v3field(<3 x __zkllvm_field_pallas_base>) #3

attributes #0 = { circuit mustprogress "frame-pointer"="all" }
attributes #1 = { mustprogress nounwind }
attributes #2 = { argmemonly nocallback nofree nosync nounwind willreturn }
attributes #3 = { nounwind }

!3 = !{!4, !4, i64 0}
!4 = !{!"field", !5, i64 0}
!5 = !{!"omnipotent char", !6, i64 0}
!6 = !{!"Simple C++ TBAA"}
!7 = distinct !{!7, !8}
!8 = !{!"llvm.loop.mustprogress"}
!9 = distinct !{!9, !8}
!10 = distinct !{!10, !8}
