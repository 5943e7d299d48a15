/**
 * Maps the class names of a source dataset onto the target class list of the model spec.
 * Every reader takes the same {@link ClassMapOptions}, so `--classes person --map-all-to person`
 * means the same thing for COCO, YOLO and MOT.
 */

/** How source labels become target class ids. */
export interface ClassMapOptions {
  /** Target class names (normally `spec.classes`); class id = index. */
  classes: string[];
  /**
   * Map every source label to this target class (e.g. `'person'` to train a one-class
   * pedestrian detector on a dataset whose labels are `pedestrian`, `rider`, ...).
   */
  mapAllTo?: string;
  /** Renames applied before lookup, source name -> target name (e.g. `{ pedestrian: 'person' }`). */
  aliases?: Record<string, string>;
  /**
   * When true, a label of a class not in `classes` is an error (`ERR_DATA_FORMAT`) instead of a
   * counted skip.
   */
  strict?: boolean;
}

/** A resolved mapping: target class id for a source name, or -1 when the label is not wanted. */
export interface ClassMapper {
  idOf(sourceName: string): number;
}

/**
 * Builds the mapper, checking the options themselves.
 * @throws {RangeError} when `classes` is empty or `mapAllTo` / an alias target is not in `classes`.
 */
export function createClassMapper(opts: ClassMapOptions): ClassMapper {
  const { classes, mapAllTo, aliases = {} } = opts;
  if (!Array.isArray(classes) || classes.length === 0)
    throw new RangeError(`'classes' must be a non-empty array of names, got ${JSON.stringify(classes)}`);
  const index = new Map(classes.map((c, i) => [c, i] as const));
  if (mapAllTo !== undefined) {
    const id = index.get(mapAllTo);
    if (id === undefined)
      throw new RangeError(`'mapAllTo' must be one of ${classes.join(', ')}, got '${mapAllTo}'`);
    return { idOf: () => id };
  }
  for (const [from, to] of Object.entries(aliases)) {
    if (!index.has(to))
      throw new RangeError(`'aliases.${from}' must be one of ${classes.join(', ')}, got '${to}'`);
  }
  return { idOf: (name) => index.get(Object.hasOwn(aliases, name) ? aliases[name] : name) ?? -1 };
}
