/** The edgekd package version (model cards, ONNX producer_version, the HTTP API). */
import { readFileSync } from 'node:fs';

/**
 * Reads package.json two levels above the compiled module (dist/models/core -> package root:
 * the same in a checkout and in an installed package).
 * @returns the version, or '0.0.0' when package.json is not there
 */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
