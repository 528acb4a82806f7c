/* The interpreter's ops, in op-number order: X(name) each. Python finds them by name
 * (wenv_interp_op_name); numeric ops are the wasm names with '.' -> '_'; a "_c" suffix
 * is the explicitly checked variant of a memory access. */
#define WENV_NUM_OPS(X) \
    X(i32_eqz) X(i32_eq) X(i32_ne) X(i32_lt_s) X(i32_lt_u) X(i32_gt_s) X(i32_gt_u) \
    X(i32_le_s) X(i32_le_u) X(i32_ge_s) X(i32_ge_u) \
    X(i64_eqz) X(i64_eq) X(i64_ne) X(i64_lt_s) X(i64_lt_u) X(i64_gt_s) X(i64_gt_u) \
    X(i64_le_s) X(i64_le_u) X(i64_ge_s) X(i64_ge_u) \
    X(f32_eq) X(f32_ne) X(f32_lt) X(f32_gt) X(f32_le) X(f32_ge) \
    X(f64_eq) X(f64_ne) X(f64_lt) X(f64_gt) X(f64_le) X(f64_ge) \
    X(i32_clz) X(i32_ctz) X(i32_popcnt) X(i32_add) X(i32_sub) X(i32_mul) X(i32_div_s) \
    X(i32_div_u) X(i32_rem_s) X(i32_rem_u) X(i32_and) X(i32_or) X(i32_xor) X(i32_shl) \
    X(i32_shr_s) X(i32_shr_u) X(i32_rotl) X(i32_rotr) \
    X(i64_clz) X(i64_ctz) X(i64_popcnt) X(i64_add) X(i64_sub) X(i64_mul) X(i64_div_s) \
    X(i64_div_u) X(i64_rem_s) X(i64_rem_u) X(i64_and) X(i64_or) X(i64_xor) X(i64_shl) \
    X(i64_shr_s) X(i64_shr_u) X(i64_rotl) X(i64_rotr) \
    X(f32_abs) X(f32_neg) X(f32_ceil) X(f32_floor) X(f32_trunc) X(f32_nearest) X(f32_sqrt) \
    X(f32_add) X(f32_sub) X(f32_mul) X(f32_div) X(f32_min) X(f32_max) X(f32_copysign) \
    X(f64_abs) X(f64_neg) X(f64_ceil) X(f64_floor) X(f64_trunc) X(f64_nearest) X(f64_sqrt) \
    X(f64_add) X(f64_sub) X(f64_mul) X(f64_div) X(f64_min) X(f64_max) X(f64_copysign) \
    X(i32_wrap_i64) X(i32_trunc_f32_s) X(i32_trunc_f32_u) X(i32_trunc_f64_s) X(i32_trunc_f64_u) \
    X(i64_extend_i32_s) X(i64_extend_i32_u) X(i64_trunc_f32_s) X(i64_trunc_f32_u) \
    X(i64_trunc_f64_s) X(i64_trunc_f64_u) X(f32_convert_i32_s) X(f32_convert_i32_u) \
    X(f32_convert_i64_s) X(f32_convert_i64_u) X(f32_demote_f64) X(f64_convert_i32_s) \
    X(f64_convert_i32_u) X(f64_convert_i64_s) X(f64_convert_i64_u) X(f64_promote_f32) \
    X(i32_reinterpret_f32) X(i64_reinterpret_f64) X(f32_reinterpret_i32) X(f64_reinterpret_i64) \
    X(i32_extend8_s) X(i32_extend16_s) X(i64_extend8_s) X(i64_extend16_s) X(i64_extend32_s) \
    X(i32_trunc_sat_f32_s) X(i32_trunc_sat_f32_u) X(i32_trunc_sat_f64_s) X(i32_trunc_sat_f64_u) \
    X(i64_trunc_sat_f32_s) X(i64_trunc_sat_f32_u) X(i64_trunc_sat_f64_s) X(i64_trunc_sat_f64_u) \
    WENV_IMM_OPS(X) WENV_MEM_AI_OPS(X) WENV_LOAD_BRANCH_OPS(X) X(i32_add_imm2) X(i32_shr_u_and_imm) X(i32_and_shl_imm) \
    WENV_SHIFTED_OPS(X)

/* Integer binary ops: one expression each (of a and b), the one rule of every form that
 * computes it (wenv_interp_num.inc; wenv_interp.c makes a wenv_e_<name>(a, b) of each). */
#define WENV_INT_BINS(X) \
    X(i32_add, I32, a + b) X(i32_sub, I32, a - b) X(i32_mul, I32, a * b) \
    X(i32_and, I32, a & b) X(i32_or, I32, a | b) X(i32_xor, I32, a ^ b) \
    X(i32_shl, I32, a << (b & 31)) X(i32_shr_s, I32, (uint32_t)((int32_t)a >> (b & 31))) \
    X(i32_shr_u, I32, a >> (b & 31)) \
    X(i32_rotl, I32, (a << (b & 31)) | (a >> ((32 - (b & 31)) & 31))) \
    X(i32_rotr, I32, (a >> (b & 31)) | (a << ((32 - (b & 31)) & 31))) \
    X(i64_add, I64, a + b) X(i64_sub, I64, a - b) X(i64_mul, I64, a * b) \
    X(i64_and, I64, a & b) X(i64_or, I64, a | b) X(i64_xor, I64, a ^ b) \
    X(i64_shl, I64, a << (b & 63)) X(i64_shr_s, I64, (uint64_t)((int64_t)a >> (b & 63))) \
    X(i64_shr_u, I64, a >> (b & 63)) \
    X(i64_rotl, I64, (a << (b & 63)) | (a >> ((64 - (b & 63)) & 63))) \
    X(i64_rotr, I64, (a >> (b & 63)) | (a << ((64 - (b & 63)) & 63)))

/* A binary op whose second operand is a temporary shifted by a constant just before
 * (crc and hash steps, scaled indices): <bin>_<shift>_imm [op, dst, a, x, k] computes
 * a <bin> (x <shift> k). The handlers are WENV_SHIFTED(Y) of wenv_interp_num.inc. */
#define WENV_SHIFTED_OPS(X) \
    X(i32_add_shl_imm) X(i32_add_shr_u_imm) X(i32_sub_shl_imm) X(i32_xor_shl_imm) \
    X(i32_xor_shr_u_imm) X(i32_or_shl_imm) X(i32_or_shr_u_imm) X(i32_and_shr_u_imm)
#define WENV_SHIFTED(Y) \
    Y(i32, I32, add, shl) Y(i32, I32, add, shr_u) Y(i32, I32, sub, shl) Y(i32, I32, xor, shl) \
    Y(i32, I32, xor, shr_u) Y(i32, I32, or, shl) Y(i32, I32, or, shr_u) Y(i32, I32, and, shr_u)

/* Fused forms with an immediate operand (wenv_interp_num.inc): <binop>_imm, <cmp>_imm and
 * br_<cmp>_imm for every integer binary op and compare. */
#define WENV_IMM_BIN(X, t) \
    X(t##_add_imm) X(t##_sub_imm) X(t##_mul_imm) X(t##_and_imm) X(t##_or_imm) X(t##_xor_imm) \
    X(t##_shl_imm) X(t##_shr_s_imm) X(t##_shr_u_imm) X(t##_rotl_imm) X(t##_rotr_imm)
#define WENV_IMM_CMP(X, t, c) X(t##_##c##_imm) X(br_##t##_##c##_imm)
#define WENV_IMM_CMPS(X, t) \
    WENV_IMM_CMP(X, t, eq) WENV_IMM_CMP(X, t, ne) WENV_IMM_CMP(X, t, lt_s) WENV_IMM_CMP(X, t, lt_u) \
    WENV_IMM_CMP(X, t, gt_s) WENV_IMM_CMP(X, t, gt_u) WENV_IMM_CMP(X, t, le_s) \
    WENV_IMM_CMP(X, t, le_u) WENV_IMM_CMP(X, t, ge_s) WENV_IMM_CMP(X, t, ge_u)
#define WENV_IMM_OPS(X) WENV_IMM_BIN(X, i32) WENV_IMM_BIN(X, i64) WENV_IMM_CMPS(X, i32) WENV_IMM_CMPS(X, i64)

#define WENV_MEM_ACCESS_OPS(X) \
    X(i32_load) X(i64_load) X(f32_load) X(f64_load) X(i32_load8_s) X(i32_load8_u) \
    X(i32_load16_s) X(i32_load16_u) X(i64_load8_s) X(i64_load8_u) X(i64_load16_s) \
    X(i64_load16_u) X(i64_load32_s) X(i64_load32_u) \
    X(i32_store) X(i64_store) X(f32_store) X(f64_store) X(i32_store8) X(i32_store16) \
    X(i64_store8) X(i64_store16) X(i64_store32)

/* Raw accesses fused with the i32.add of a constant that computes their address ("_ai":
 * [op, addr, offset, value, a, imm], addr = a + imm written first; wenv_interp_mem.inc). */
#define WENV_MEM_AI_OPS(X) \
    X(i32_load_ai) X(i64_load_ai) X(f32_load_ai) X(f64_load_ai) X(i32_load8_s_ai) X(i32_load8_u_ai) \
    X(i32_load16_s_ai) X(i32_load16_u_ai) X(i64_load8_s_ai) X(i64_load8_u_ai) X(i64_load16_s_ai) \
    X(i64_load16_u_ai) X(i64_load32_s_ai) X(i64_load32_u_ai) \
    X(i32_store_ai) X(i64_store_ai) X(f32_store_ai) X(f64_store_ai) X(i32_store8_ai) \
    X(i32_store16_ai) X(i64_store8_ai) X(i64_store16_ai) X(i64_store32_ai)
/* Also, for every access, "_aa" (an i32.add of two values: [op, addr, offset, value, a, b],
 * addr = a + b) and "_at" (a table element's address, (x & mask) << shift plus a constant:
 * [op, addr, offset, value, x, mask, shift, imm]); their names are made from
 * WENV_MEM_ACCESS_OPS (wenv_interp.c). */


/* A raw load and a branch on the loaded value ("while ((p = p->next))"): [op, addr,
 * offset, value, disp], the value written, then a jump when it is nonzero (_br_if) or zero
 * (_br_unless). The handlers are WENV_LOAD_BRANCH(Y) of wenv_interp_mem.inc. */
#define WENV_LOAD_BRANCH_OPS(X) \
    X(i32_load_br_if) X(i32_load_br_unless) X(i32_load8_u_br_if) X(i32_load8_u_br_unless) \
    X(i32_load16_u_br_if) X(i32_load16_u_br_unless)
#define WENV_LOAD_BRANCH(Y) Y(i32_load, wenv_i_u32) Y(i32_load8_u, wenv_i_u8) Y(i32_load16_u, wenv_i_u16)

/* Control, variables, calls, memory size/grow/bulk; fused compare-and-branch
 * (br_<cmp>: jump when the comparison holds). */
#define WENV_CTL_OPS(X) \
    X(unreachable) X(br) X(br_if) X(br_unless) X(br_table) X(copy) X(const) X(select) \
    X(global_get) X(global_set) X(global_get_imp) X(global_set_imp) \
    X(call) X(call_import) X(call_ref) X(return_call) X(return_call_import) X(return_call_ref) \
    X(host_call) X(ref_func) X(return) X(memory_size) X(memory_grow) \
    X(memory_fill) X(memory_copy) \
    X(br_i32_eq) X(br_i32_ne) X(br_i32_lt_s) X(br_i32_lt_u) X(br_i32_gt_s) X(br_i32_gt_u) \
    X(br_i32_le_s) X(br_i32_le_u) X(br_i32_ge_s) X(br_i32_ge_u) \
    X(br_i64_eq) X(br_i64_ne) X(br_i64_lt_s) X(br_i64_lt_u) X(br_i64_gt_s) X(br_i64_gt_u) \
    X(br_i64_le_s) X(br_i64_le_u) X(br_i64_ge_s) X(br_i64_ge_u) X(br_i64_eqz) X(br_i64_nez)


/* Store bounds (wenv_interp_ctl.inc), emitted only for engines that consume fuel or
 * interrupt by epochs: fuel [op, cost], epoch [op]. */
#define WENV_STORE_OPS(X) X(fuel) X(epoch)

/* Tables and references (wenv_interp_table.inc). */
#define WENV_TABLE_OPS(X) \
    X(table_get) X(table_set) X(table_size) X(table_grow) X(table_fill) X(table_copy) \
    X(ref_as_non_null) X(bulk_exit) X(call_indirect) X(return_call_indirect)
