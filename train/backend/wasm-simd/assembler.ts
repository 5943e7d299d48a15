/**
 * A minimal WebAssembly binary writer: just enough to emit small SIMD loops that run on the
 * tfjs wasm backend's own memory (imported as `env.memory`), without a compiler toolchain.
 * Every function takes and returns i32/f32 values; pointers are byte offsets into that memory.
 */

/** Value types (binary encodings). */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (32-bit). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** Code fragments are flat byte arrays; nested arrays are flattened by {@link code}. */
export type Code = number | Code[];

/** Flattens fragments into bytes. */
export function code(...parts: Code[]): number[] {
  const out: number[] = [];
  const walk = (p: Code): void => {
    if (typeof p === 'number') out.push(p);
    else for (const q of p) walk(q);
  };
  parts.forEach(walk);
  return out;
}

const simd = (op: number): number[] => [0xfd, ...uleb(op)];

/** Instruction helpers (only the ones edgekd's kernels use). */
export const op = {
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number): Code => [0x21, ...uleb(i)],
  tee: (i: number): Code => [0x22, ...uleb(i)],
  i32: (c: number): Code => [0x41, ...sleb(c)],
  f32: (c: number): Code => {
    const b = new Uint8Array(new Float32Array([c]).buffer);
    return [0x43, ...b];
  },
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32GeU: 0x4f,
  f32Load: (offset = 0): Code => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset = 0): Code => [0x38, 2, ...uleb(offset)],
  v128Load: (offset = 0): Code => [...simd(0x00), 0, ...uleb(offset)],
  v128Store: (offset = 0): Code => [...simd(0x0b), 0, ...uleb(offset)],
  f32x4Splat: simd(0x13),
  f32x4Gt: simd(0x44),
  f32x4Le: simd(0x45),
  v128And: simd(0x4e),
  f32x4Add: simd(0xe4),
  f32x4Sub: simd(0xe5),
  f32x4Mul: simd(0xe6),
  f32x4Min: simd(0xe8),
  f32x4Max: simd(0xe9),
};

/**
 * `for (i = start; i < limit; i += step) body` over i32 locals (unsigned compare).
 * @param i - counter local
 * @param limit - local holding the (exclusive) end
 */
export function forLoop(i: number, start: Code, limit: number, step: number, body: Code): Code {
  return [
    start,
    op.set(i),
    0x02,
    0x40, // block
    0x03,
    0x40, // loop
    op.get(i),
    op.get(limit),
    op.i32GeU,
    0x0d,
    1, // br_if 1 (exit) when i >= limit
    body,
    op.get(i),
    op.i32(step),
    op.i32Add,
    op.set(i),
    0x0c,
    0, // br 0 (continue)
    0x0b,
    0x0b, // end loop, end block
  ];
}

/** One function of a module. */
export interface FuncDef {
  name: string;
  params: number[];
  /** Extra locals after the params, by type. */
  locals: number[];
  body: Code;
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...uleb(bytes.length), ...bytes];
}

function name(s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  return [...uleb(b.length), ...b];
}

/**
 * Encodes a module that imports `env.memory` and exports `funcs` by name (no results).
 * @returns the binary, ready for `new WebAssembly.Module`.
 */
export function encodeModule(funcs: FuncDef[]): Uint8Array {
  const types = funcs.map((f) => [0x60, ...uleb(f.params.length), ...f.params, 0]);
  const imports = vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x00]]);
  const fnSec = vec(funcs.map((_, i) => uleb(i)));
  const exports = vec(funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const bodies = funcs.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = [...locals, ...code(f.body), 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, fnSec),
    ...section(7, exports),
    ...section(10, vec(bodies)),
  ]);
}
