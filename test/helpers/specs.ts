/** Small model specs shared by end-to-end tests: fast to train, every part of the graph present. */
import type { ModelSpecInput } from '../../models/core/spec.js';

/** A 64x64 one-class student (a few thousand params): a training step takes milliseconds. */
export function microSpec(name = 'micro'): ModelSpecInput {
  return {
    name,
    classes: ['person'],
    input: { height: 64, width: 64 },
    backbone: {
      stemChannels: 8,
      stages: [
        { channels: 8, depth: 1, expansion: 2 },
        { channels: 12, depth: 1, expansion: 2 },
        { channels: 16, depth: 1, expansion: 2 },
        { channels: 16, depth: 1, expansion: 2 },
      ],
    },
    neck: { channels: 8 },
    head: { channels: 8 },
    decode: {},
  };
}
