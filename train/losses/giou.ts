/**
 * GIoU loss on boxes decoded at every cell of an object's Gaussian area (TTFNet). Dense box
 * regression gives each object dozens of training samples instead of CenterNet's one centre
 * cell, which is what makes TTFNet converge several times faster.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Boxes decoded from the size/offset heads at every cell, corners in cells:
 * cx = x + offset_x, w = exp(size_w) (the decode of models/core/decode.ts, divided by stride).
 * @param sizeBhw2 - log(w), log(h) in cells
 * @param offsetBhw2 - centre offset from the cell corner, in cells
 * @returns [x1, y1, x2, y2], each [B, h, w, 1]
 */
export function decodeCellBoxes(sizeBhw2: tf.Tensor4D, offsetBhw2: tf.Tensor4D): tf.Tensor4D[] {
  return tf.tidy(() => {
    const [, h, w] = sizeBhw2.shape;
    const gx = tf.range(0, w, 1, 'float32').reshape([1, 1, w, 1]);
    const gy = tf.range(0, h, 1, 'float32').reshape([1, h, 1, 1]);
    const [ox, oy] = tf.split(offsetBhw2, 2, 3);
    const [sw, sh] = tf.split(sizeBhw2, 2, 3);
    const cx = ox.add(gx);
    const cy = oy.add(gy);
    const hw = tf.exp(sw).mul(0.5);
    const hh = tf.exp(sh).mul(0.5);
    return [cx.sub(hw), cy.sub(hh), cx.add(hw), cy.add(hh)] as tf.Tensor4D[];
  });
}

/**
 * Sum over cells of weight * (1 - GIoU(pred, target)).
 * @param pred - [x1, y1, x2, y2], each [B, h, w, 1], x2 > x1 and y2 > y1
 * @param targetBhw4 - target corners [B, h, w, 4] (non-degenerate everywhere, see targets.ts)
 * @param weightBhw1 - per-cell weight, 0 outside objects
 * @returns scalar sum (the caller divides by the whole batch's weight sum)
 */
export function giouLossSum(
  pred: tf.Tensor4D[],
  targetBhw4: tf.Tensor4D,
  weightBhw1: tf.Tensor4D,
): tf.Scalar {
  return tf.tidy(() => {
    const [px1, py1, px2, py2] = pred;
    const [tx1, ty1, tx2, ty2] = tf.split(targetBhw4, 4, 3);
    const iw = tf.relu(tf.minimum(px2, tx2).sub(tf.maximum(px1, tx1)));
    const ih = tf.relu(tf.minimum(py2, ty2).sub(tf.maximum(py1, ty1)));
    const inter = iw.mul(ih);
    const pa = px2.sub(px1).mul(py2.sub(py1));
    const ta = tx2.sub(tx1).mul(ty2.sub(ty1));
    const union = pa.add(ta).sub(inter);
    const cw = tf.maximum(px2, tx2).sub(tf.minimum(px1, tx1));
    const ch = tf.maximum(py2, ty2).sub(tf.minimum(py1, ty1));
    const enclose = cw.mul(ch);
    const giou = inter.div(union).sub(enclose.sub(union).div(enclose));
    return tf.sub(1, giou).mul(weightBhw1).sum() as tf.Scalar;
  });
}
