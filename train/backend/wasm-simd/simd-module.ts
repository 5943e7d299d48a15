/**
 * edgekd's hand-assembled SIMD loops, instantiated on the tfjs wasm backend's own memory so they
 * read and write tensors in place (no copies). tfjs-backend-wasm 4.22 has no fused BatchNorm
 * training kernels and computes depthwise filter gradients through several full passes; these
 * loops do each job in one or two passes at 4 floats per instruction. All loops walk a
 * `[rows, C]` matrix row by row; `cb` is the row length in bytes and must be a multiple of 16
 * (C a multiple of 4): callers fall back to plain ops otherwise.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type * as tf from '@tensorflow/tfjs';
import { I32, V128, encodeModule, forLoop, op, type Code, type FuncDef } from './assembler.js';

/** Activation fused after BatchNorm. */
export type FusedActivation = 'linear' | 'relu' | 'relu6';

const ACTS: FusedActivation[] = ['linear', 'relu', 'relu6'];

/** `v128.load` of `ptr + j`. */
const ld = (ptr: number, j: number): Code => [op.get(ptr), op.get(j), op.i32Add, op.v128Load()];
/** Address `ptr + j` (for a following store). */
const at = (ptr: number, j: number): Code => [op.get(ptr), op.get(j), op.i32Add];
/** `ptr += step` (step a local). */
const bump = (ptr: number, step: number): Code => [op.get(ptr), op.get(step), op.i32Add, op.set(ptr)];

/** Applies the activation to the v128 on the stack (zero/six: v128 locals). */
function actCode(act: FusedActivation, zero: number, six: number): Code {
  if (act === 'linear') return [];
  if (act === 'relu') return [op.get(zero), op.f32x4Max];
  return [op.get(zero), op.f32x4Max, op.get(six), op.f32x4Min];
}

/**
 * Pushes `dy & mask(z)` where z = xh * g + b (tfjs semantics: relu passes z > 0, relu6 passes
 * 0 < z <= 6). Expects local `xh` set.
 */
function maskedDy(
  act: FusedActivation,
  dy: number,
  j: number,
  xh: number,
  g: number,
  b: number,
  zero: number,
  six: number,
  z: number,
): Code {
  if (act === 'linear') return ld(dy, j);
  const zc: Code = [op.get(xh), ld(g, j), op.f32x4Mul, ld(b, j), op.f32x4Add, op.set(z)];
  const mask: Code =
    act === 'relu'
      ? [op.get(z), op.get(zero), op.f32x4Gt]
      : [op.get(z), op.get(zero), op.f32x4Gt, op.get(z), op.get(six), op.f32x4Le, op.v128And];
  return [zc, ld(dy, j), mask, op.v128And];
}

const splats = (zero: number, six: number): Code => [
  op.f32(0),
  op.f32x4Splat,
  op.set(zero),
  op.f32(6),
  op.f32x4Splat,
  op.set(six),
];

function functions(): FuncDef[] {
  const fns: FuncDef[] = [];
  // dw_row(x, dy, acc, n, xstep, cb): for n pixels, acc[c] += x[c] * dy[c]; x += xstep, dy += cb.
  {
    const [x, dy, acc, n, xstep, cb, i, j] = [0, 1, 2, 3, 4, 5, 6, 7];
    fns.push({
      name: 'dw_row',
      params: [I32, I32, I32, I32, I32, I32],
      locals: [I32, I32],
      body: forLoop(i, op.i32(0), n, 1, [
        forLoop(j, op.i32(0), cb, 16, [
          at(acc, j),
          ld(acc, j),
          ld(x, j),
          ld(dy, j),
          op.f32x4Mul,
          op.f32x4Add,
          op.v128Store(),
        ]),
        bump(x, xstep),
        bump(dy, cb),
      ]),
    });
  }
  // gemm_<ciB>x<4*coV>(x, dy, acc, n, xstep, dystep, accRow): a register tile of
  // acc[k, j] += sum_{i < n} x[i, k] * dy[i, j] for k < ciB, j < 4*coV (x row i at x + i*xstep,
  // dy row i at dy + i*dystep, acc row k at acc + k*accRow; all bytes).
  for (const ciB of [4, 1]) {
    for (const coV of [4, 1]) {
      const [x, dy, acc, n, xstep, dystep, accRow, i] = [0, 1, 2, 3, 4, 5, 6, 7];
      const A = (k: number, v: number): number => 8 + k * coV + v;
      const D = (v: number): number => 8 + ciB * coV + v;
      const xs = 8 + ciB * coV + coV;
      const accAddr = (k: number): Code => [op.get(acc), op.get(accRow), op.i32(k), op.i32Mul, op.i32Add];
      const tiles: Code[] = [];
      const load: Code[] = [];
      const store: Code[] = [];
      for (let k = 0; k < ciB; k++) {
        for (let v = 0; v < coV; v++) {
          load.push([accAddr(k), op.v128Load(16 * v), op.set(A(k, v))]);
          store.push([accAddr(k), op.get(A(k, v)), op.v128Store(16 * v)]);
        }
      }
      for (let v = 0; v < coV; v++) tiles.push([op.get(dy), op.v128Load(16 * v), op.set(D(v))]);
      for (let k = 0; k < ciB; k++) {
        tiles.push([op.get(x), op.f32Load(4 * k), op.f32x4Splat, op.set(xs)]);
        for (let v = 0; v < coV; v++)
          tiles.push([op.get(A(k, v)), op.get(xs), op.get(D(v)), op.f32x4Mul, op.f32x4Add, op.set(A(k, v))]);
      }
      fns.push({
        name: `gemm_${ciB}x${4 * coV}`,
        params: [I32, I32, I32, I32, I32, I32, I32],
        locals: [I32, ...new Array<number>(ciB * coV + coV + 1).fill(V128)],
        body: [load, forLoop(i, op.i32(0), n, 1, [tiles, bump(x, xstep), bump(dy, dystep)]), store],
      });
    }
  }
  // col_sum(x, acc, rows, cb): acc[c] += sum_r x[r, c]
  {
    const [x, acc, rows, cb, r, j] = [0, 1, 2, 3, 4, 5];
    fns.push({
      name: 'col_sum',
      params: [I32, I32, I32, I32],
      locals: [I32, I32],
      body: forLoop(r, op.i32(0), rows, 1, [
        forLoop(j, op.i32(0), cb, 16, [at(acc, j), ld(acc, j), ld(x, j), op.f32x4Add, op.v128Store()]),
        bump(x, cb),
      ]),
    });
  }
  // col_sq(x, mean, acc, rows, cb): acc[c] += sum_r (x[r, c] - mean[c])^2
  {
    const [x, mean, acc, rows, cb, r, j, d] = [0, 1, 2, 3, 4, 5, 6, 7];
    fns.push({
      name: 'col_sq',
      params: [I32, I32, I32, I32, I32],
      locals: [I32, I32, V128],
      body: forLoop(r, op.i32(0), rows, 1, [
        forLoop(j, op.i32(0), cb, 16, [
          ld(x, j),
          ld(mean, j),
          op.f32x4Sub,
          op.tee(d),
          op.get(d),
          op.f32x4Mul,
          op.set(d),
          at(acc, j),
          ld(acc, j),
          op.get(d),
          op.f32x4Add,
          op.v128Store(),
        ]),
        bump(x, cb),
      ]),
    });
  }
  for (const act of ACTS) {
    // bn_fwd(x, mean, inv, g, b, out, rows, cb): out = act(((x - mean) * inv) * g + b)
    {
      const [x, mean, inv, g, b, out, rows, cb, r, j, zero, six] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
      fns.push({
        name: `bn_fwd_${act}`,
        params: [I32, I32, I32, I32, I32, I32, I32, I32],
        locals: [I32, I32, V128, V128],
        body: [
          splats(zero, six),
          forLoop(r, op.i32(0), rows, 1, [
            forLoop(j, op.i32(0), cb, 16, [
              at(out, j),
              ld(x, j),
              ld(mean, j),
              op.f32x4Sub,
              ld(inv, j),
              op.f32x4Mul,
              ld(g, j),
              op.f32x4Mul,
              ld(b, j),
              op.f32x4Add,
              actCode(act, zero, six),
              op.v128Store(),
            ]),
            bump(x, cb),
            bump(out, cb),
          ]),
        ],
      });
    }
    // bn_bwd_sum(x, dy, mean, inv, g, b, sdy, sdyx, rows, cb): sdy += d, sdyx += d * xh,
    // with xh = (x - mean) * inv and d = dy masked by the activation's gradient.
    {
      const [x, dy, mean, inv, g, b, sdy, sdyx, rows, cb, r, j, xh, d, zero, six, z] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
      ];
      fns.push({
        name: `bn_bwd_sum_${act}`,
        params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32],
        locals: [I32, I32, V128, V128, V128, V128, V128],
        body: [
          splats(zero, six),
          forLoop(r, op.i32(0), rows, 1, [
            forLoop(j, op.i32(0), cb, 16, [
              ld(x, j),
              ld(mean, j),
              op.f32x4Sub,
              ld(inv, j),
              op.f32x4Mul,
              op.set(xh),
              maskedDy(act, dy, j, xh, g, b, zero, six, z),
              op.set(d),
              at(sdy, j),
              ld(sdy, j),
              op.get(d),
              op.f32x4Add,
              op.v128Store(),
              at(sdyx, j),
              ld(sdyx, j),
              op.get(d),
              op.get(xh),
              op.f32x4Mul,
              op.f32x4Add,
              op.v128Store(),
            ]),
            bump(x, cb),
            bump(dy, cb),
          ]),
        ],
      });
    }
    // bn_bwd_dx(x, dy, mean, inv, g, b, k1, k2, k3, out, rows, cb): out = ((d - k1) - xh * k2) * k3
    {
      const [x, dy, mean, inv, g, b, k1, k2, k3, out, rows, cb, r, j, xh, zero, six, z] = [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
      ];
      fns.push({
        name: `bn_bwd_dx_${act}`,
        params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32],
        locals: [I32, I32, V128, V128, V128, V128],
        body: [
          splats(zero, six),
          forLoop(r, op.i32(0), rows, 1, [
            forLoop(j, op.i32(0), cb, 16, [
              at(out, j),
              ld(x, j),
              ld(mean, j),
              op.f32x4Sub,
              ld(inv, j),
              op.f32x4Mul,
              op.set(xh),
              maskedDy(act, dy, j, xh, g, b, zero, six, z),
              ld(k1, j),
              op.f32x4Sub,
              op.get(xh),
              ld(k2, j),
              op.f32x4Mul,
              op.f32x4Sub,
              ld(k3, j),
              op.f32x4Mul,
              op.v128Store(),
            ]),
            bump(x, cb),
            bump(dy, cb),
            bump(out, cb),
          ]),
        ],
      });
    }
  }
  return fns;
}

type Fn = (...args: number[]) => void;

/** The slice of the WebAssembly JS API used here (tsconfig's lib has no DOM/WebAssembly types). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The exported loops of one instance (see the comments in {@link functions} for signatures). */
export interface SimdLoops {
  dwRow: Fn;
  /** Register tiles by `${ciB}x${coFloats}`: '4x16', '4x4', '1x16', '1x4'. */
  gemm: Record<string, Fn>;
  colSum: Fn;
  colSq: Fn;
  bnFwd: Record<FusedActivation, Fn>;
  bnBwdSum: Record<FusedActivation, Fn>;
  bnBwdDx: Record<FusedActivation, Fn>;
}

let compiled: object | undefined;
const instances = new WeakMap<WasmMemory, SimdLoops>();

interface WasmInternals {
  asm: { memory: WasmMemory };
  _malloc(n: number): number;
  _free(p: number): void;
}

/** The emscripten module behind a wasm backend (memory, malloc). */
export function wasmModuleOf(backend: BackendWasm): WasmInternals {
  return (backend as unknown as { wasm: WasmInternals }).wasm;
}

/** The SIMD loops bound to `backend`'s memory (instantiated once per memory). */
export function simdLoops(backend: BackendWasm): SimdLoops {
  const memory = wasmModuleOf(backend).asm.memory;
  let inst = instances.get(memory);
  if (inst) return inst;
  compiled ??= new WA.Module(encodeModule(functions()));
  const ex = new WA.Instance(compiled, { env: { memory } }).exports as Record<string, Fn>;
  const byAct = (prefix: string) =>
    Object.fromEntries(ACTS.map((a) => [a, ex[`${prefix}_${a}`]])) as Record<FusedActivation, Fn>;
  inst = {
    dwRow: ex.dw_row,
    gemm: { '4x16': ex.gemm_4x16, '4x4': ex.gemm_4x4, '1x16': ex.gemm_1x16, '1x4': ex.gemm_1x4 },
    colSum: ex.col_sum,
    colSq: ex.col_sq,
    bnFwd: byAct('bn_fwd'),
    bnBwdSum: byAct('bn_bwd_sum'),
    bnBwdDx: byAct('bn_bwd_dx'),
  };
  instances.set(memory, inst);
  return inst;
}

/**
 * `acc[ci, co] += sum_{i < n} x[i, :ci]^T dy[i, :co]` with register tiles (co % 4 == 0).
 * Pointers and strides in bytes; `acc` is row-major `[ci, co]`.
 */
export function gemmTN(
  loops: SimdLoops,
  x: number,
  dy: number,
  acc: number,
  n: number,
  xstep: number,
  dystep: number,
  ci: number,
  co: number,
): void {
  for (let k = 0; k < ci;) {
    const kb = ci - k >= 4 ? 4 : 1;
    for (let j = 0; j < co;) {
      const jb = co - j >= 16 ? 16 : 4;
      loops.gemm[`${kb}x${jb}`](x + 4 * k, dy + 4 * j, acc + (k * co + j) * 4, n, xstep, dystep, co * 4);
      j += jb;
    }
    k += kb;
  }
}

/** Byte offset of a tensor's data in the wasm heap. */
export function ptrOf(backend: BackendWasm, t: tf.TensorInfo): number {
  return (backend.dataIdMap.get(t.dataId) as { memoryOffset: number }).memoryOffset;
}

/**
 * Scratch float32 buffers in the wasm heap, freed together. Views must be re-created after any
 * allocation (the heap may grow and detach older views), so callers go through {@link view}.
 */
export class HeapScratch {
  private readonly ptrs: number[] = [];
  constructor(private readonly backend: BackendWasm) {}

  /** Allocates `n` floats (zero-filled) and returns the byte offset. */
  alloc(n: number): number {
    const w = wasmModuleOf(this.backend);
    const p = w._malloc(Math.max(16, n * 4)) >>> 0;
    this.ptrs.push(p);
    new Float32Array(w.asm.memory.buffer, p, n).fill(0);
    return p;
  }

  /** Allocates and fills from `values`. */
  from(values: ArrayLike<number>): number {
    const p = this.alloc(values.length);
    this.view(p, values.length).set(values);
    return p;
  }

  /** A fresh float32 view of `n` floats at byte offset `p`. */
  view(p: number, n: number): Float32Array {
    return new Float32Array(wasmModuleOf(this.backend).asm.memory.buffer, p, n);
  }

  dispose(): void {
    const w = wasmModuleOf(this.backend);
    for (const p of this.ptrs) w._free(p);
    this.ptrs.length = 0;
  }
}
