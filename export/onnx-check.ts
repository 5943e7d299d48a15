/**
 * The structural rules of the ONNX checker that can be checked without the onnx Python package:
 * versions, unique names, single assignment, topological order, every input defined, outputs
 * produced, value_info with a shape for every intermediate tensor, initializer sizes, and the
 * edgekd metadata. ONNX Runtime loading the model checks the op schemas; together they stand
 * in for `onnx.checker.check_model(full_check=True)`.
 */
import { onnx, type OnnxTypes } from './onnx-proto.js';
import { ModelFormatError } from '../models/core/errors.js';

const BYTES: Partial<Record<number, number>> = {
  [onnx.TensorProto.DataType.FLOAT]: 4,
  [onnx.TensorProto.DataType.FLOAT16]: 2,
  [onnx.TensorProto.DataType.INT64]: 8,
  [onnx.TensorProto.DataType.INT32]: 4,
  [onnx.TensorProto.DataType.INT8]: 1,
  [onnx.TensorProto.DataType.UINT8]: 1,
  [onnx.TensorProto.DataType.BOOL]: 1,
};

export interface CheckOptions {
  /** Smallest default-domain opset accepted. */
  minOpset: number;
  /** Require `edgekd.spec` (valid JSON) in metadata_props. */
  requireSpec: boolean;
  /** Require a value_info with elem type and full shape for every intermediate tensor. */
  requireShapes: boolean;
}

/**
 * Lists every rule violation of a model (empty when it passes).
 * @param model - a decoded or freshly built ModelProto
 * @returns human-readable problems, each naming the node or tensor
 */
export function checkOnnxModel(model: OnnxTypes.IModelProto, options: Partial<CheckOptions> = {}): string[] {
  const opts: CheckOptions = { minOpset: 17, requireSpec: true, requireShapes: true, ...options };
  const problems: string[] = [];
  const ir = Number(model.irVersion ?? 0);
  if (!(ir >= 7)) problems.push(`ir_version is ${ir}, want >= 7`);
  const opset = (model.opsetImport ?? []).find((o) => (o.domain ?? '') === '');
  if (!opset) problems.push('no opset_import for the default domain');
  else if (Number(opset.version) < opts.minOpset)
    problems.push(`default-domain opset is ${Number(opset.version)}, want >= ${opts.minOpset}`);
  const g = model.graph;
  if (!g) return [...problems, 'model has no graph'];
  if (!g.name) problems.push('graph has no name');

  const defined = new Set<string>();
  const define = (name: string | null | undefined, what: string): void => {
    if (!name) problems.push(`${what} has an empty name`);
    else if (defined.has(name)) problems.push(`tensor '${name}' is defined more than once (${what})`);
    else defined.add(name);
  };
  for (const init of g.initializer ?? []) {
    define(init.name, 'initializer');
    const size = BYTES[init.dataType ?? -1];
    const n = (init.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
    if (size === undefined)
      problems.push(`initializer '${init.name}' has unsupported data type ${init.dataType}`);
    else if (init.rawData && init.rawData.length !== n * size)
      problems.push(`initializer '${init.name}' holds ${init.rawData.length} bytes, dims need ${n * size}`);
  }
  const initNames = new Set((g.initializer ?? []).map((i) => i.name));
  for (const i of g.input ?? []) if (!initNames.has(i.name)) define(i.name, 'graph input');
  if (!(g.input ?? []).some((i) => !initNames.has(i.name))) problems.push('graph has no input');
  if (!(g.output ?? []).length) problems.push('graph has no output');

  const nodeNames = new Set<string>();
  (g.node ?? []).forEach((n, idx) => {
    const label = `node ${idx} '${n.name ?? ''}' (${n.opType ?? '?'})`;
    if (!n.name) problems.push(`${label} has no name`);
    else if (nodeNames.has(n.name)) problems.push(`node name '${n.name}' is used twice`);
    else nodeNames.add(n.name);
    if (!n.opType) problems.push(`${label} has no op_type`);
    for (const i of n.input ?? [])
      if (i !== '' && !defined.has(i))
        problems.push(`${label} reads '${i}', which no input, initializer or earlier node defines`);
    for (const o of n.output ?? []) define(o, label);
  });
  for (const o of g.output ?? [])
    if (!defined.has(o.name ?? '')) problems.push(`graph output '${o.name}' is never produced`);

  const shaped = (v: OnnxTypes.IValueInfoProto): boolean => {
    const t = v.type?.tensorType;
    if (!t || !t.elemType || !t.shape) return false;
    return (t.shape.dim ?? []).every((d) => (d.dimValue != null && Number(d.dimValue) > 0) || !!d.dimParam);
  };
  for (const io of [...(g.input ?? []), ...(g.output ?? [])])
    if (!shaped(io)) problems.push(`graph input/output '${io.name}' lacks an element type or shape`);
  if (opts.requireShapes) {
    const info = new Map((g.valueInfo ?? []).map((v) => [v.name ?? '', v]));
    const outNames = new Set((g.output ?? []).map((o) => o.name));
    for (const n of g.node ?? [])
      for (const o of n.output ?? []) {
        if (o === '' || outNames.has(o)) continue;
        const v = info.get(o);
        if (!v || !shaped(v))
          problems.push(`tensor '${o}' of node '${n.name}' has no value_info with a full shape`);
      }
  }
  if (opts.requireSpec) {
    const spec = (model.metadataProps ?? []).find((p) => p.key === 'edgekd.spec');
    if (!spec) problems.push("metadata_props lacks 'edgekd.spec'");
    else
      try {
        JSON.parse(spec.value ?? '');
      } catch {
        problems.push("metadata 'edgekd.spec' is not valid JSON");
      }
  }
  return problems;
}

/**
 * Throws when {@link checkOnnxModel} finds a problem.
 * @throws {ModelFormatError} `ERR_MODEL_FORMAT` listing the first problems
 */
export function assertValidOnnx(model: OnnxTypes.IModelProto, options: Partial<CheckOptions> = {}): void {
  const p = checkOnnxModel(model, options);
  if (p.length)
    throw new ModelFormatError(
      'ERR_MODEL_FORMAT',
      `the ONNX model breaks ${p.length} checker rule(s): ${p.slice(0, 5).join('; ')}`,
    );
}
