/**
 * Cross-checks a GPU backend against the WebAssembly reference on one probe frame before the
 * page trusts it. onnxruntime-web's WebGPU kernels do not all behave like its CPU ones: with
 * 1.30, a Reshape/Unsqueeze of a tensor copied from a CPU kernel (TopK, int64 Casts) returned
 * another tensor's data, which put every box of older `boxes` exports at cell (0, 0). edgekd's
 * boxes export now avoids that pattern; this check stays as the guard against the next such
 * kernel difference: a wrong backend is dropped, with the reason, rather than left to draw
 * plausible-looking wrong boxes.
 */

/** Outputs by name, as flat float arrays. */
export type OutputData = Record<string, Float32Array>;

/** Box corners within this many input pixels and scores within this much agree. */
const BOX_TOL_PX = 0.5;
const SCORE_TOL = 1e-2;
/** Raw head values (probabilities, log sizes, offsets in cells) within this much agree. */
const HEAD_TOL = 1e-2;
/** `boxes` rows below this score are padding (non-peaks have score 0) and not compared. */
const MIN_SCORE = 0.05;

/**
 * Compares a backend's outputs with the reference's.
 * @param form - 'boxes': `detections` `[1, K, 6]` rows, matched regardless of order (a near tie
 *   may sort differently); 'heads': every output element-wise
 * @returns why they disagree, or undefined when they agree
 */
export function outputsDisagree(
  form: 'boxes' | 'heads',
  ref: OutputData,
  got: OutputData,
): string | undefined {
  if (form === 'boxes') {
    const a = ref.detections;
    const b = got.detections;
    if (!a || !b || a.length !== b.length)
      return `'detections' has ${b?.length} values, expected ${a?.length}`;
    const used = new Uint8Array(b.length / 6);
    let compared = 0;
    let unmatched = 0;
    for (let r = 0; r < a.length; r += 6) {
      if (!(a[r + 4] >= MIN_SCORE)) continue;
      compared++;
      let found = false;
      for (let q = 0; q < b.length && !found; q += 6) {
        if (used[q / 6]) continue;
        const same =
          Math.abs(a[r + 4] - b[q + 4]) <= SCORE_TOL &&
          a[r + 5] === b[q + 5] &&
          [0, 1, 2, 3].every((k) => Math.abs(a[r + k] - b[q + k]) <= BOX_TOL_PX);
        if (same) {
          used[q / 6] = 1;
          found = true;
        }
      }
      if (!found) unmatched++;
    }
    return unmatched > 0
      ? `${unmatched} of ${compared} boxes differ from wasm's on a probe frame`
      : undefined;
  }
  for (const [name, a] of Object.entries(ref)) {
    const b = got[name];
    if (!b || b.length !== a.length) return `output '${name}' has ${b?.length} values, expected ${a.length}`;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    if (!(worst <= HEAD_TOL))
      return `output '${name}' differs from wasm's on a probe frame by up to ${worst.toPrecision(3)}`;
  }
  return undefined;
}
