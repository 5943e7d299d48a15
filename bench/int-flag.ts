/** Integer flag parsing shared by the bench scripts (they print, and exit on a bad flag). */

/**
 * @param name - flag name, for the message
 * @param v - the raw flag value
 * @param min - smallest accepted value
 * @throws {RangeError} naming the flag when `v` is not an integer >= min
 */
export function intFlag(name: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new RangeError(`'--${name}' must be an integer >= ${min}, got ${v}`);
  return n;
}
