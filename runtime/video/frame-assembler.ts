/**
 * Reassembles fixed-size raw frames from a byte stream. A pipe delivers chunks of whatever size
 * the kernel hands over (64 KiB typically), never aligned with frames: a frame may span many
 * chunks and a chunk may hold the end of one frame and the start of the next.
 */

/**
 * Byte queue that hands out exact-size frames.
 *
 * Each frame is copied into its own ArrayBuffer (offset 0, exact length): frames outlive the
 * chunks they came from, and a detector may transfer a frame's buffer to a worker thread, which
 * must not detach a chunk that other frames still share.
 *
 * @example
 * ```ts
 * const a = new FrameAssembler();
 * a.push(new Uint8Array(5)); a.push(new Uint8Array(7));
 * a.take(4)?.length; // -> 4
 * a.take(9);         // -> null (8 bytes left)
 * a.buffered;        // -> 8
 * ```
 */
export class FrameAssembler {
  private chunks: Uint8Array[] = [];
  /** Read position inside chunks[0]. */
  private head = 0;
  private length = 0;

  /** Bytes buffered and not yet taken. */
  get buffered(): number {
    return this.length;
  }

  /** Appends a chunk (kept by reference until its bytes are taken; do not reuse it). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /**
   * Takes exactly `n` bytes as a new frame.
   * @param n - frame size in bytes (> 0)
   * @returns the frame, or null when fewer than `n` bytes are buffered
   * @throws {RangeError} when `n` is not a positive integer
   */
  take(n: number): Uint8Array | null {
    if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`'n' must be a positive integer, got ${n}`);
    if (this.length < n) return null;
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(n - filled, c.length - this.head);
      out.set(c.subarray(this.head, this.head + k), filled);
      filled += k;
      this.head += k;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= n;
    return out;
  }

  /** Drops everything buffered. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
  }
}
